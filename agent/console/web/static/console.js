// edge-agent console: keeps the server-rendered page current from the JSON
// API (docs/API.md) and runs the live views of the visible tab only, so a
// sensor is watched (and costs CPU) only while someone looks at it. No
// framework, no build step; every value from the agent goes into the page
// as text (textContent), never as markup.
'use strict';
(() => {
  const $ = (s, el = document) => el.querySelector(s);
  const $$ = (s, el = document) => Array.from(el.querySelectorAll(s));
  const csrf = ($('meta[name="csrf-token"]') || {}).content || '';
  const canView = document.body.dataset.canView === 'true';
  const views = ['overview', 'camera', 'signals', 'capture', 'config'];
  const axisColors = ['#1f5fbf', '#c62828', '#17803d', '#8e44ad', '#b26a00', '#00838f'];

  // api calls the console's API with the CSRF token; it throws the
  // answer's error text on failure.
  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (!r.ok) {
      let msg = r.status + ' ' + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r.status === 204 ? null : r.json();
  }

  // h builds an element: h('p', {class: 'x'}, 'text', child…).
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids) {
      if (k === undefined || k === null || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }

  const fmtBytes = n => {
    if (n < 1024) return n + ' B';
    const u = ['KiB', 'MiB', 'GiB'];
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
    return n.toFixed(1) + ' ' + u[i];
  };
  const fmtAgo = iso => {
    const t = Date.parse(iso);
    if (!t || t < 0 || iso.startsWith('0001-')) return '–';
    let s = Math.max(0, Math.round((Date.now() - t) / 1000));
    const parts = [];
    for (const [u, n] of [['h', 3600], ['m', 60]]) if (s >= n) { parts.push(Math.floor(s / n) + u); s %= n; }
    parts.push(s + 's');
    return parts.join('') + ' ago';
  };
  const fmtClock = iso => new Date(iso).toLocaleTimeString([], { hour12: false });

  // confirmButton asks for a second click within 5 s before it acts.
  function confirmButton(label, confirmLabel, onConfirm) {
    const b = h('button', { type: 'button', class: 'secondary' }, label);
    let armed = 0;
    b.onclick = () => {
      if (armed) { clearTimeout(armed); armed = 0; b.textContent = label; onConfirm(); return; }
      b.textContent = confirmLabel;
      b.classList.add('armed');
      armed = setTimeout(() => { armed = 0; b.textContent = label; b.classList.remove('armed'); }, 5000);
    };
    return b;
  }

  // overviewCards keeps the overview's box of cards (the element sel names)
  // drawn from the list the API answers at path, one card(item) each: every
  // second, and at once when the page shows again or the tab changes, but
  // only while the overview is on screen. It returns its refresh, for an
  // action to redraw at once. A refresh already under way is not doubled,
  // and a failed one leaves the cards as they are (poll reports an agent
  // that does not answer).
  function overviewCards(sel, path, card) {
    let busy = false;
    async function refresh() {
      const box = $(sel);
      const view = $('#overview');
      if (!box || busy || document.visibilityState !== 'visible') return;
      if (document.body.classList.contains('js') && view && !view.classList.contains('active')) return;
      // A button waiting for its confirming click is not redrawn under the
      // user's finger.
      if ($('button.armed', box)) return;
      busy = true;
      try {
        const list = await api('GET', path);
        box.replaceChildren(...list.map(card));
      } catch (e) {
        /* poll reports an agent that does not answer */
      } finally {
        busy = false;
      }
    }
    setInterval(refresh, 1000);
    document.addEventListener('visibilitychange', refresh);
    window.addEventListener('hashchange', refresh);
    refresh();
    return refresh;
  }

  // edgeConsole shares these helpers with the page's other scripts
  // (uploads.js, pairing.js), which the page loads after this one: all are
  // deferred, and deferred scripts run in document order.
  window.edgeConsole = Object.freeze({ $, api, h, fmtBytes, confirmButton, overviewCards });

  // ---- tabs --------------------------------------------------------------
  const current = () => {
    const v = location.hash.slice(1);
    return views.includes(v) ? v : 'overview';
  };
  function show() {
    const v = current();
    for (const s of $$('main > section.view')) s.classList.toggle('active', s.id === v);
    for (const a of $$('#tabs a')) a.classList.toggle('active', a.hash === '#' + v);
    live.update();
    poll();
  }

  // ---- links and sensors ---------------------------------------------------
  function linkCard(l, open) {
    const dl = h('dl', null,
      h('dt', null, 'since'), h('dd', null, fmtAgo(l.since)),
      h('dt', null, 'reconnects'), h('dd', null, l.reconnects),
      h('dt', null, 'sessions'), h('dd', null, l.sessions),
      h('dt', null, 'in / out'), h('dd', null, fmtBytes(l.bytes_in) + ' / ' + fmtBytes(l.bytes_out)),
      h('dt', null, 'messages'), h('dd', null, l.messages_in + ' / ' + l.messages_out));
    if (l.spool) dl.append(h('dt', null, 'spool'), h('dd', null, `${l.spool.items} queued (${fmtBytes(l.spool.bytes)}) · ${l.spool.delivered} sent`));
    const details = l.details ? h('p', { class: 'details' }, ...Object.keys(l.details).sort().map(k => h('span', null, k + ': ' + l.details[k]))) : null;
    const events = (l.events || []).slice().reverse().map(e => h('li', null,
      h('time', null, fmtClock(e.at)), ' ', h('span', { class: 'state s-' + e.state }, e.state),
      e.error ? ' ' : null, e.error ? h('span', { class: 'error' }, e.error) : null,
      e.note ? ' ' : null, e.note ? h('span', { class: 'muted' }, e.note) : null));
    const hist = h('details', { class: 'history', open }, h('summary', null, `History (${events.length})`), h('ol', null, ...events));
    return h('article', { class: 'card link', dataset: { link: l.name, state: l.state } },
      h('header', null, h('h3', null, l.name), h('span', { class: 'kind' }, l.kind), h('span', { class: 'state s-' + l.state }, l.state)),
      dl, lastError(l), details, hist);
  }

  // lastError shows the last error: as the reason while the link is down,
  // as history once it is up again.
  function lastError(l) {
    if (!l.last_error) return null;
    if (l.state === 'backoff' || l.state === 'failed') return h('p', { class: 'error' }, l.last_error);
    return h('p', { class: 'past' }, 'last error: ' + l.last_error);
  }

  function renderLinks(links) {
    const box = $('#links');
    const open = new Set($$('article.link', box).filter(a => $('details', a).open).map(a => a.dataset.link));
    if (!links.length) { box.replaceChildren(h('p', { class: 'muted' }, 'No links configured.')); return; }
    box.replaceChildren(...links.map(l => linkCard(l, open.has(l.name))));
  }

  // The measured frame rate: sample counts over the last five seconds of
  // polls (one poll's jitter would swing it by a fifth at 5 fps).
  const counts = new Map(); // sensor → [[samples, time]…]
  function renderSensors(list) {
    const body = $('#sensors tbody');
    if (!body) return;
    const rows = list.map(s => h('tr', { dataset: { sensor: s.name } },
      h('td', null, s.name), h('td', null, s.kind), h('td', null, s.class),
      h('td', { class: 'state s-' + s.state }, s.state),
      h('td', null, s.rate ? (+s.rate.toPrecision(4)) + ' /s' : ''),
      h('td', null, s.subscribers), h('td', null, s.samples), h('td', null, s.dropped),
      h('td', null, s.restarts), h('td', { class: 'error' }, s.last_error || '')));
    if (rows.length) body.replaceChildren(...rows);
    const now = performance.now();
    for (const s of list) {
      const seen = (counts.get(s.name) || []).filter(([n, t]) => now - t <= 5500 && n <= s.samples);
      seen.push([s.samples, now]);
      counts.set(s.name, seen);
      const fig = $(`#camera figure[data-sensor="${CSS.escape(s.name)}"] .fps`);
      if (!fig) continue;
      if (s.state !== 'running') { fig.textContent = s.state; continue; }
      const [n0, t0] = seen[0];
      if (now - t0 >= 900) fig.textContent = ((s.samples - n0) * 1000 / (now - t0)).toFixed(1) + ' fps measured';
    }
  }

  // renderReload shows what the last config reload did (null: none yet).
  function renderReload(r) {
    const p = $('#reload');
    if (!p) return;
    p.hidden = !r;
    if (!r) return;
    p.classList.toggle('error', r.refused);
    p.replaceChildren('Last config reload, ', h('span', { dataset: { ago: r.at } }, fmtAgo(r.at)), ': ' + r.summary);
  }

  function renderRules(list) {
    const body = $('#rules tbody');
    if (!body) return;
    body.replaceChildren(...list.map(r => h('tr', { dataset: { rule: r.name } },
      h('td', null, r.name),
      h('td', null, `${r.model}: ${r.label} ≥ ${r.min_score}` + (r.for_seconds ? ` for ${r.for_seconds} s` : '')),
      h('td', { class: 'state s-' + r.state }, r.state, r.last_error ? h('span', { class: 'error' }, ' ' + r.last_error) : ''),
      h('td', null, r.last_score.toFixed(2)), h('td', null, r.fired), h('td', null, r.suppressed),
      h('td', null, r.last_fired ? h('span', { dataset: { ago: r.last_fired } }, fmtAgo(r.last_fired)) : '–'),
      h('td', null, ...r.actions.map(a => h('span', { class: 'action' }, `${a.do} → ${a.link}: ${a.ok} ok`,
        a.failed ? h('span', { class: 'error' }, `, ${a.failed} failed` + (a.last_error ? ` (${a.last_error})` : '')) : '', ' '))))));
  }

  // ---- polling -------------------------------------------------------------
  let polling = false;
  async function poll() {
    if (!canView || polling || document.visibilityState !== 'visible') return;
    polling = true;
    try {
      const v = current();
      if (v === 'overview') {
        const [links, sensors, reload] = await Promise.all([api('GET', '/api/links'), api('GET', '/api/sensors'), api('GET', '/api/reload')]);
        renderReload(reload);
        renderLinks(links);
        renderSensors(sensors);
      } else if (v === 'signals') {
        if ($('#rules')) renderRules(await api('GET', '/api/rules'));
      } else if (v === 'camera') {
        renderSensors(await api('GET', '/api/sensors'));
      } else if (v === 'capture') {
        renderCaptures(await api('GET', '/api/captures'));
      }
      for (const el of $$('[data-ago]')) el.textContent = fmtAgo(el.dataset.ago);
    } catch (e) {
      setMsg($('#capture-msg'), 'The agent does not answer: ' + e.message);
    } finally {
      polling = false;
    }
  }

  // ---- live views ------------------------------------------------------------
  // live keeps one stream per visible live figure and stops the others.
  const live = {
    active: new Map(),
    update() {
      const want = new Set();
      if (canView && document.visibilityState === 'visible') {
        const v = current();
        if (v === 'camera' || v === 'signals') for (const f of $$(`#${v} figure[data-live]`)) want.add(f);
      }
      for (const [f, stop] of this.active) if (!want.has(f)) { stop(); this.active.delete(f); }
      for (const f of want) if (!this.active.has(f)) this.active.set(f, start(f));
    },
  };
  function start(f) {
    switch (f.dataset.live) {
      case 'mjpeg': return startPreview(f);
      case 'plot': return startPlot(f);
      case 'level': return startLevel(f);
    }
    return () => {};
  }

  // blank is a transparent pixel: pointing the <img> at it ends the
  // stream's request (removing the element would not).
  const blank = 'data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7';

  // startPreview shows the camera's MJPEG stream in the figure's <img>.
  function startPreview(f) {
    const img = $('img.preview', f);
    const cap = $('.fps', f);
    let retry = 0;
    const open = () => {
      img.onerror = () => {
        cap.textContent = 'preview unavailable, retrying…';
        retry = setTimeout(open, 3000);
      };
      img.src = f.dataset.src + '?t=' + Date.now();
    };
    open();
    return () => {
      clearTimeout(retry);
      img.onerror = null;
      img.src = blank;
    };
  }

  // fitCanvas sizes the canvas's buffer to its box.
  function fitCanvas(cv) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(cv.clientWidth * dpr)), ht = Math.max(1, Math.round(cv.clientHeight * dpr));
    if (cv.width !== w || cv.height !== ht) { cv.width = w; cv.height = ht; }
    return dpr;
  }

  // startPlot draws the last 10 s of a motion sensor's axes.
  function startPlot(f) {
    const cv = $('canvas', f), rate = $('.rate', f), legend = $('.legend', f);
    const rows = []; // [t ms, values]
    let axes = [];
    let updates = 0;
    const es = new EventSource(f.dataset.src);
    es.onmessage = e => {
      const d = JSON.parse(e.data);
      if (rows.length && d.t.length && d.t[0] < rows[rows.length - 1][0]) rows.length = 0; // a new stream
      for (let i = 0; i < d.t.length; i++) rows.push([d.t[i], d.v[i]]);
      const last = rows.length ? rows[rows.length - 1][0] : 0;
      let cut = 0;
      while (cut < rows.length && rows[cut][0] < last - 10000) cut++;
      if (cut) rows.splice(0, cut);
      if ((d.axes || []).join() !== axes.join() || !legend.childElementCount) {
        axes = d.axes || [];
        const n = rows.length ? rows[rows.length - 1][1].length : axes.length;
        legend.replaceChildren(...Array.from({ length: n }, (_, i) => h('span', { class: 'ax' + (i % 6) }, axes[i] || 'axis' + i)));
      }
      rate.textContent = `${d.rate.toFixed(1)} Hz measured` + (d.declared ? ` (${+d.declared.toPrecision(4)} set)` : '') +
        (d.every > 1 ? ` · 1 in ${d.every} plotted` : '') + (d.dropped ? ` · ${d.dropped} dropped` : '');
      f.dataset.updates = ++updates;
      f.dataset.span = rows.length ? Math.round(last - rows[0][0]) : 0;
      drawPlot(cv, rows);
    };
    es.onerror = () => { rate.textContent = 'reconnecting…'; };
    return () => es.close();
  }

  function drawPlot(cv, rows) {
    const dpr = fitCanvas(cv), ctx = cv.getContext('2d'), W = cv.width, H = cv.height;
    ctx.clearRect(0, 0, W, H);
    if (rows.length < 2) return;
    let lo = Infinity, hi = -Infinity;
    for (const [, v] of rows) for (const x of v) { if (x < lo) lo = x; if (x > hi) hi = x; }
    if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
    const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
    const t1 = rows[rows.length - 1][0], t0 = t1 - 10000;
    const X = t => (t - t0) / 10000 * W, Y = v => H - (v - lo) / (hi - lo) * H;
    ctx.lineWidth = dpr;
    ctx.strokeStyle = '#e3e7eb';
    ctx.beginPath();
    for (let s = 1; s < 10; s++) { const x = Math.round(X(t1 - s * 1000)) + .5; ctx.moveTo(x, 0); ctx.lineTo(x, H); }
    if (lo < 0 && hi > 0) { const y = Math.round(Y(0)) + .5; ctx.moveTo(0, y); ctx.lineTo(W, y); }
    ctx.stroke();
    ctx.fillStyle = '#66707a';
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.fillText(+hi.toPrecision(3) + '', 4 * dpr, 12 * dpr);
    ctx.fillText(+lo.toPrecision(3) + '', 4 * dpr, H - 4 * dpr);
    const n = rows[rows.length - 1][1].length;
    ctx.lineWidth = 1.5 * dpr;
    for (let a = 0; a < n; a++) {
      ctx.strokeStyle = axisColors[a % axisColors.length];
      ctx.beginPath();
      rows.forEach(([t, v], i) => { const x = X(t), y = Y(v[a]); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
      ctx.stroke();
    }
  }

  // startLevel shows an audio sensor's level (RMS bar, peak mark) and its
  // last 10 s as a waveform envelope (one column per 10 ms).
  function startLevel(f) {
    const cv = $('canvas', f), bar = $('.bar', f), peak = $('.peak', f), rms = $('.rms', f), pk = $('.pk', f);
    const cols = []; // [min, max]
    let updates = 0;
    const pct = db => Math.max(0, Math.min(100, (db + 60) / 60 * 100));
    const es = new EventSource(f.dataset.src);
    es.onmessage = e => {
      const d = JSON.parse(e.data);
      bar.style.width = pct(d.rms_dbfs) + '%';
      peak.style.left = `calc(${pct(d.peak_dbfs)}% - 2px)`;
      rms.textContent = d.rms_dbfs.toFixed(1);
      pk.textContent = d.peak_dbfs.toFixed(1);
      for (const c of d.envelope) cols.push(c);
      if (cols.length > 1000) cols.splice(0, cols.length - 1000);
      f.dataset.rms = d.rms_dbfs;
      f.dataset.columns = cols.length;
      f.dataset.updates = ++updates;
      drawWave(cv, cols);
    };
    es.onerror = () => { rms.textContent = '…'; };
    return () => es.close();
  }

  function drawWave(cv, cols) {
    fitCanvas(cv);
    const ctx = cv.getContext('2d'), W = cv.width, H = cv.height, mid = H / 2;
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = '#e3e7eb';
    ctx.fillRect(0, Math.round(mid), W, 1);
    ctx.fillStyle = '#1f5fbf';
    const step = W / 1000, off = 1000 - cols.length;
    cols.forEach(([lo, hi], i) => {
      const x = (off + i) * step, y0 = mid - hi * mid, y1 = mid - lo * mid;
      ctx.fillRect(x, y0, Math.max(step, 1), Math.max(1, y1 - y0));
    });
  }

  // ---- captures ----------------------------------------------------------------
  const captureCards = new Map(); // id → element
  function setMsg(el, text, bad) {
    if (!el) return;
    el.textContent = text;
    el.classList.toggle('error', !!bad);
  }

  function captureView(c) {
    const box = h('div', { class: 'view' });
    if (c.state === 'running' || !c.bytes) return box;
    const url = c.url + '?inline=1';
    if (c.class === 'audio') {
      box.append(h('audio', { controls: true, preload: 'none', src: url }));
    } else if (c.class === 'still' && c.frames) {
      const img = h('img', { alt: `capture ${c.id} of ${c.sensor}`, src: `/api/captures/${c.id}/frames/0` });
      box.append(img);
      if (c.frames > 1) {
        const range = h('input', { type: 'range', min: 0, max: c.frames - 1, value: 0, 'aria-label': 'still' });
        range.oninput = () => { img.src = `/api/captures/${c.id}/frames/${range.value}`; };
        box.append(range);
      }
    } else if (c.class === 'motion') {
      const cv = h('canvas', { class: 'plot' });
      box.append(cv);
      fetch(url, { credentials: 'same-origin' }).then(r => r.text()).then(text => {
        const lines = text.trim().split('\n').slice(1).map(l => l.split(',').map(Number));
        const rows = lines.filter(l => l.length > 1).map(l => [l[0], l.slice(1)]);
        if (rows.length > 1) {
          const span = rows[rows.length - 1][0] - rows[0][0];
          // drawPlot shows 10 s ending at the last row: stretch to fit.
          const k = span > 0 ? 10000 / span : 1;
          drawPlot(cv, rows.map(([t, v]) => [(t - rows[0][0]) * k, v]));
        }
      });
    } else if (c.class === 'video') {
      box.append(h('p', { class: 'muted' }, 'H.264 elementary stream: download it and play it with ffplay or VLC.'));
    }
    return box;
  }

  function captureCard(c) {
    const el = h('article', { class: 'card capture', dataset: { capture: c.id, state: c.state } });
    fillCapture(el, c);
    return el;
  }

  function fillCapture(el, c) {
    el.dataset.state = c.state;
    const actions = h('div', { class: 'actions' });
    if (c.state === 'running') {
      const b = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
      b.onclick = () => api('POST', `/api/captures/${c.id}/cancel`).then(poll, e => setMsg($('#capture-msg'), e.message, true));
      actions.append(b);
    } else {
      actions.append(h('a', { href: c.url, download: c.file }, 'Download ' + c.file), h('span', { class: 'muted' }, fmtBytes(c.bytes)));
      const del = h('button', { type: 'button', class: 'secondary' }, 'Delete');
      del.onclick = () => api('DELETE', `/api/captures/${c.id}`).then(poll, e => setMsg($('#capture-msg'), e.message, true));
      actions.append(del);
    }
    const head = h('header', null, h('h3', null, c.sensor), h('span', { class: 'kind' }, c.class), h('span', { class: 'state s-' + c.state }, c.state));
    const line = h('p', null, `${c.summary || '…'} · ${c.covered.toFixed(2)} of ${c.seconds} s · started ${fmtClock(c.started)}`);
    const err = c.error ? h('p', { class: 'error' }, c.error) : null;
    const old = $('.view', el);
    const view = old && el.dataset.viewFor === c.state ? old : captureView(c);
    el.dataset.viewFor = c.state;
    el.replaceChildren(head, line, err || '', view, actions);
  }

  let capturePoll = 0;
  function renderCaptures(list) {
    const box = $('#captures');
    const seen = new Set();
    for (const c of list) {
      seen.add(c.id);
      let el = captureCards.get(c.id) || $(`article[data-capture="${CSS.escape(c.id)}"]`, box);
      if (!el || !captureCards.has(c.id)) {
        const fresh = captureCard(c);
        if (el) el.replaceWith(fresh);
        el = fresh;
        captureCards.set(c.id, el);
      } else if (el.dataset.state !== c.state || c.state === 'running') {
        fillCapture(el, c);
      }
    }
    for (const [id, el] of captureCards) if (!seen.has(id)) { el.remove(); captureCards.delete(id); }
    for (const el of $$('article[data-capture]', box)) if (!seen.has(el.dataset.capture)) el.remove();
    box.replaceChildren(...list.map(c => captureCards.get(c.id)));
    clearTimeout(capturePoll);
    if (list.some(c => c.state === 'running')) capturePoll = setTimeout(poll, 400);
  }

  function initCapture() {
    const form = $('#capture-form');
    if (!form) return;
    const sel = form.elements.sensor, secs = form.elements.seconds;
    sel.onchange = () => {
      const cls = sel.selectedOptions[0] && sel.selectedOptions[0].dataset.class;
      secs.min = cls === 'still' ? 0 : 0.5;
      if (cls !== 'still' && +secs.value === 0) secs.value = 2;
    };
    sel.onchange();
    form.onsubmit = async e => {
      e.preventDefault();
      const msg = $('#capture-msg');
      try {
        const c = await api('POST', '/api/captures', { sensor: sel.value, seconds: +secs.value });
        setMsg(msg, `Capturing ${c.sensor}…`);
        await poll();
      } catch (err) {
        setMsg(msg, err.message, true);
      }
    };
  }

  // ---- session ----------------------------------------------------------------
  function initSession() {
    const login = $('#login');
    if (login) {
      login.onsubmit = async e => {
        e.preventDefault();
        try {
          await api('POST', '/api/login', { token: login.elements.token.value });
          location.reload();
        } catch (err) {
          setMsg($('#login-msg'), err.message, true);
        }
      };
    }
    const logout = $('#logout');
    if (logout) logout.onclick = () => api('POST', '/api/logout').then(() => location.reload());
  }

  // ---- start ----------------------------------------------------------------------
  initSession();
  if (!canView) return;
  document.body.classList.add('js');
  initCapture();
  for (const a of $$('#tabs a')) {
    a.addEventListener('click', e => {
      e.preventDefault();
      history.replaceState(null, '', a.hash);
      show();
    });
  }
  window.addEventListener('hashchange', show);
  document.addEventListener('visibilitychange', () => { live.update(); poll(); });
  setInterval(poll, 1000);
  show();
})();
