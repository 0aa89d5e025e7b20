// edge-agent console: the uploads cards (docs/API.md, "Uploads"). Each
// link's spool: what waits, what is being sent and how far, and the
// actions: send an item now, cancel one, cancel all, manual/auto. Kept
// current from /api/uploads while the overview is on screen; every value
// from the agent goes into the page as text, never as markup.
'use strict';
(() => {
  if (document.body.dataset.canView !== 'true') return;
  const { api, h, fmtBytes, confirmButton, overviewCards } = window.edgeConsole;
  const canAct = document.body.dataset.canAct === 'true';

  const fmtSecs = s => {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  };
  const until = iso => (Date.parse(iso) - Date.now()) / 1000;

  let msg = null; // [link, text, bad]: the last action's answer, shown on its card

  // act runs an action and shows its failure on the card.
  async function act(link, method, path) {
    try {
      await api(method, path);
      msg = null;
    } catch (e) {
      msg = [link, e.message, true];
    }
    refresh();
  }

  function itemRow(q, it) {
    const base = `/api/uploads/${encodeURIComponent(q.link)}/items/${encodeURIComponent(it.id)}`;
    const facts = [fmtBytes(it.size), 'queued ' + fmtSecs(it.age) + ' ago',
      it.attempts + (it.attempts === 1 ? ' attempt' : ' attempts')];
    const li = h('li', { class: 'item', dataset: { item: it.id, inFlight: it.in_flight ? 'true' : 'false' } },
      h('p', { class: 'name' }, h('b', null, it.name), ' ', h('span', { class: 'muted' }, facts.join(' · '))));
    if (it.in_flight) {
      const p = h('p', { class: 'inflight' }, 'sending');
      if (it.sent >= 0) {
        p.append(' · ' + fmtBytes(it.sent) + ' of ' + fmtBytes(it.size), ' ',
          h('progress', { max: Math.max(it.size, 1), value: Math.min(it.sent, it.size) }));
      }
      li.append(p);
    } else if (it.requested) {
      li.append(h('p', { class: 'muted' }, 'goes next'));
    } else if (it.next_attempt) {
      li.append(h('p', { class: 'muted' }, 'next attempt in ' + fmtSecs(until(it.next_attempt))));
    }
    if (it.last_error) li.append(h('p', { class: 'error' }, it.last_error));
    if (canAct) {
      const acts = h('div', { class: 'actions' });
      if (!it.in_flight) {
        const send = h('button', { type: 'button', class: 'secondary send' }, q.paused ? 'Send' : 'Send now');
        send.onclick = () => act(q.link, 'POST', base + '/retry');
        acts.append(send);
      }
      const cancel = h('button', { type: 'button', class: 'secondary cancel' }, 'Cancel');
      cancel.onclick = () => act(q.link, 'POST', base + '/cancel');
      acts.append(cancel);
      li.append(acts);
    }
    return li;
  }

  function card(q) {
    const base = `/api/uploads/${encodeURIComponent(q.link)}`;
    const summary = `${q.items} queued (${fmtBytes(q.bytes)} of ${fmtBytes(q.max_bytes)}) · ${q.delivered} sent · ` +
      `${q.cancelled} cancelled · ${q.rejected} refused · ${q.retries} failed attempts`;
    const el = h('article', { class: 'card upload', dataset: { upload: q.link, mode: q.mode } },
      h('header', null, h('h3', null, q.link), h('span', { class: 'kind' }, q.kind), h('span', { class: 'state s-' + q.mode }, q.mode)),
      h('p', { class: 'summary' }, summary));
    if (q.paused) el.append(h('p', { class: 'muted' }, 'Uploading is manual: items are kept until you send them or resume.'));
    if (q.queue.length) {
      el.append(h('ol', { class: 'queue' }, ...q.queue.map(it => itemRow(q, it))));
      if (q.more) el.append(h('p', { class: 'muted' }, `and ${q.more} more`));
    } else {
      el.append(h('p', { class: 'muted empty' }, 'Nothing waiting.'));
    }
    if (msg && msg[0] === q.link) el.append(h('p', { class: msg[2] ? 'error' : 'muted' }, msg[1]));
    if (canAct) {
      const acts = h('div', { class: 'actions' });
      const mode = h('button', { type: 'button', class: 'mode' }, q.paused ? 'Resume (auto)' : 'Pause (manual)');
      mode.onclick = () => act(q.link, 'POST', base + (q.paused ? '/resume' : '/pause'));
      acts.append(mode);
      if (q.items) acts.append(confirmButton('Cancel all', `Cancel all ${q.items}?`, () => act(q.link, 'POST', base + '/cancel')));
      el.append(acts);
    }
    return el;
  }

  const refresh = overviewCards('#uploads', '/api/uploads', card);
})();
