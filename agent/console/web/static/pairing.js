// edge-agent console: Frame.io pairing in the browser (docs/API.md,
// "Frame.io pairing"), the same steps as `edge-agent pair`: start, the
// six-digit code large with its countdown and where to enter it, cancel at
// any step, the result (project, who authorized); unpair. Kept current from
// /api/frameio while the overview is on screen; every value from the agent
// goes into the page as text, never as markup.
'use strict';
(() => {
  if (document.body.dataset.canView !== 'true') return;
  const { api, h, confirmButton, overviewCards } = window.edgeConsole;
  const canAct = document.body.dataset.canAct === 'true';

  // webLink is a link to u when it is an http(s) URL (Frame.io names it:
  // never a javascript: or data: one), else u as text.
  function webLink(u) {
    try {
      const p = new URL(u);
      if (p.protocol === 'https:' || p.protocol === 'http:') {
        return h('a', { href: p.href, target: '_blank', rel: 'noopener noreferrer' }, u);
      }
    } catch (e) { /* not a URL */ }
    return h('code', null, u);
  }

  const running = s => s === 'requesting' || s === 'waiting' || s === 'saving';
  const msgs = new Map(); // link → the last action's failure

  async function act(link, path) {
    try {
      await api('POST', `/api/frameio/${encodeURIComponent(link)}${path}`);
      msgs.delete(link);
    } catch (e) {
      msgs.set(link, e.message);
    }
    refresh();
  }

  function card(v) {
    const st = v.pairing;
    const el = h('article', { class: 'card pairing', dataset: { pairing: v.link, state: st.state, paired: String(v.paired) } },
      h('header', null, h('h3', null, v.link), h('span', { class: 'kind' }, 'Frame.io'),
        h('span', { class: 'state ' + (v.paired ? 's-up' : 's-stopped') }, v.paired ? 'paired' : 'not paired')));
    if (v.paired && !running(st.state)) {
      const p = h('p', { class: 'result' });
      if (v.project) p.append('Project ', h('b', null, v.project)); else p.append('Paired');
      if (v.authorized_by) p.append(', authorized by ', h('b', null, v.authorized_by));
      if (v.link_pairing) p.append(' · link: ' + v.link_pairing);
      el.append(p);
    }
    switch (st.state) {
      case 'requesting':
        el.append(h('p', { class: 'step' }, 'Asking Frame.io for a code…'));
        break;
      case 'waiting': {
        el.append(h('p', { class: 'code', 'aria-label': 'pairing code' }, st.code));
        const where = h('p', { class: 'step' }, 'In Frame.io, open the project, then C2C Connections, New C2C Connection, and enter the code');
        const u = st.verification_url_complete || st.verification_url;
        if (u) where.append(' (', webLink(u), ')');
        where.append('.');
        el.append(where, h('p', { class: 'countdown' }, `The code expires in ${st.expires_in} s` +
          (st.frameio_name ? ` · Frame.io lists this device as “${st.frameio_name}”` : '') +
          (st.codes > 1 ? ` · code ${st.codes}` : '')));
        break;
      }
      case 'saving':
        el.append(h('p', { class: 'step' }, 'Approved: saving the tokens…'));
        break;
      case 'paired':
        if (st.identity_error) el.append(h('p', { class: 'error' }, 'Paired (tokens saved), but the identity could not be read: ' + st.identity_error));
        break;
      case 'failed':
        el.append(h('p', { class: 'error' }, st.error));
        break;
      case 'cancelled':
        el.append(h('p', { class: 'muted' }, 'Pairing cancelled.'));
        break;
    }
    if (st.note) el.append(h('p', { class: 'muted note' }, st.note));
    if (msgs.has(v.link)) el.append(h('p', { class: 'error' }, msgs.get(v.link)));
    if (canAct) {
      const acts = h('div', { class: 'actions' });
      if (running(st.state)) {
        const b = h('button', { type: 'button', class: 'secondary cancel' }, 'Cancel pairing');
        b.onclick = () => act(v.link, '/pair/cancel');
        acts.append(b);
      } else {
        const b = h('button', { type: 'button', class: 'pair' }, v.paired ? 'Pair again' : 'Pair with Frame.io');
        b.onclick = () => act(v.link, '/pair');
        acts.append(b);
        if (v.paired) acts.append(confirmButton('Unpair', 'Unpair: confirm', () => act(v.link, '/unpair')));
      }
      el.append(acts);
    }
    return el;
  }

  const refresh = overviewCards('#pairings', '/api/frameio', card);
})();
