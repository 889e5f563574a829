// The web admin's shared code: the API client, the signed-in session, DOM
// helpers, formatting and SVG charts. Every page script calls Boat.start.
'use strict';

const Boat = (() => {
  const TOKEN = 'boat.token';
  const ME = 'boat.me';
  const ADMINS = ['SUPERADMIN', 'ADMIN'];

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN);
  const me = () => {
    try { return JSON.parse(sessionStorage.getItem(ME)); } catch (_) { return null; }
  };
  function signIn(login) {
    sessionStorage.setItem(TOKEN, login.token);
    sessionStorage.setItem(ME, JSON.stringify(login.user));
  }
  function signOut() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(ME);
  }
  const can = (roles) => { const u = me(); return !!u && roles.includes(u.role); };

  function toLogin() {
    const here = location.pathname + location.search;
    location.assign('/ui/login' + (here.startsWith('/ui/login') ? '' : '?next=' + encodeURIComponent(here)));
  }

  // Calls the node's API through /ui/api. Resolves with the parsed JSON
  // body (or text); rejects with an ApiError carrying the API's message.
  // `progress(sent, total)` reports the upload of `body`.
  function request(method, path, opts = {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, '/ui/api' + path);
      const t = token();
      if (t) xhr.setRequestHeader('Authorization', 'Bearer ' + t);
      let body = null;
      if (opts.json !== undefined) {
        body = JSON.stringify(opts.json);
        xhr.setRequestHeader('Content-Type', 'application/json');
      } else if (opts.body !== undefined) {
        body = opts.body;
        xhr.setRequestHeader('Content-Type', opts.type || 'application/octet-stream');
      }
      if (opts.progress) xhr.upload.onprogress = (e) => opts.progress(e.loaded, e.total);
      xhr.onerror = () => reject(new ApiError(0, 'The node did not answer: is it running?'));
      xhr.ontimeout = () => reject(new ApiError(0, 'The node took too long to answer.'));
      xhr.onload = () => {
        let data = xhr.responseText;
        try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
        let message = (data && typeof data === 'object' && data.error) ? data.error
          : `${xhr.status} ${xhr.statusText || 'error'}`;
        if (xhr.status === 401 && !opts.keepSession) {
          signOut();
          message += ' Sign in again.';
        }
        if (xhr.status === 403) message = 'Not allowed for your role: ' + message;
        const retry = xhr.getResponseHeader('Retry-After');
        if (retry && xhr.status >= 500) message += ` (retry in ${retry} s)`;
        reject(new ApiError(xhr.status, message, data));
      };
      xhr.send(body);
    });
  }

  const banner = () => document.getElementById('banner');
  function show(err) {
    const b = banner();
    b.className = 'error';
    b.textContent = err instanceof Error ? err.message : String(err);
    b.hidden = false;
    if (err instanceof ApiError && err.status === 401 && !location.pathname.startsWith('/ui/login')) {
      setTimeout(toLogin, 1500);
    }
  }
  function info(text) {
    const b = banner();
    b.className = 'info';
    b.textContent = text;
    b.hidden = false;
  }
  function clear() { banner().hidden = true; }

  // el('td', {class: 'num'}, 'text', child...): children are nodes or
  // text (never parsed as HTML).
  function el(tag, attrs, ...children) {
    const ns = tag === 'svg' || el.svgTags.has(tag) ? 'http://www.w3.org/2000/svg' : null;
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  el.svgTags = new Set(['g', 'line', 'polyline', 'circle', 'text', 'rect', 'path', 'title']);

  // A table of `rows` (objects) with `columns`: [{label, cell: row => node|text, num}].
  function table(columns, rows, opts = {}) {
    const head = el('tr', {}, columns.map((c) => el('th', { class: c.num ? 'num' : null }, c.label)));
    const body = rows.map((r) => {
      const tr = el('tr', { class: opts.rowClass ? opts.rowClass(r) : null },
        columns.map((c) => el('td', { class: c.num ? 'num' : null }, c.cell(r))));
      if (opts.onClick) {
        tr.classList.add('clickable');
        tr.addEventListener('click', () => opts.onClick(r));
      }
      return tr;
    });
    if (!rows.length) {
      body.push(el('tr', {}, el('td', { colspan: columns.length, class: 'muted' }, opts.empty || 'None yet.')));
    }
    return el('table', {}, el('thead', {}, head), el('tbody', {}, body));
  }

  const fmt = {
    bytes(n) {
      if (n === undefined || n === null) return '-';
      const units = ['B', 'KiB', 'MiB', 'GiB'];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
      return (i ? n.toFixed(1) : n) + ' ' + units[i];
    },
    time(ms) {
      if (!ms) return '-';
      const d = new Date(ms);
      const pad = (x) => String(x).padStart(2, '0');
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
        `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    },
    clock(ms) {
      const d = new Date(ms);
      return d.toTimeString().slice(0, 8);
    },
    secs(s) {
      if (s === undefined || s === null) return '-';
      if (s < 60) return s.toFixed(1) + ' s';
      return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
    },
    num(x, digits = 4) {
      if (x === undefined || x === null || Number.isNaN(x)) return '-';
      return Number(x).toFixed(digits);
    },
    knobs(k) {
      return Object.entries(k || {}).map(([n, v]) => `${n}=${typeof v === 'number' && !Number.isInteger(v)
        ? v.toPrecision(3) : v}`).join(' ');
    },
  };

  // Repeats `fn` every `ms` milliseconds, never two at once; errors go to
  // the banner and the polling goes on (a node may come back), except
  // after a 404 or a 401. A hidden tab skips its rounds.
  // The returned function stops it; its `first` promise settles after the
  // first round.
  function every(ms, fn) {
    let stopped = false;
    let ran = false;
    let settle;
    const first = new Promise((resolve) => { settle = resolve; });
    const tick = async () => {
      if (stopped) return;
      // A hidden tab asks nothing; it catches up when shown again.
      if (document.hidden && ran) {
        setTimeout(tick, ms);
        return;
      }
      ran = true;
      try {
        await fn();
      } catch (e) {
        show(e);
        // Gone, or signed out: asking again will not help.
        if (e instanceof ApiError && (e.status === 404 || e.status === 401)) stopped = true;
      }
      settle();
      if (!stopped) setTimeout(tick, ms);
    };
    tick();
    const stop = () => { stopped = true; };
    stop.first = first;
    return stop;
  }

  // Round numbers for an axis from lo to hi, about `n` of them.
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  const COLORS = ['#1f6feb', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#0a7f8a'];

  // An SVG chart. series: [{name, points: [[x, y]...], kind: 'line'|'dots',
  // color}]; opts: {xLabel, yLabel, xFormat, yFormat, yMin, yMax, height}.
  function chart(series, opts = {}) {
    const W = 640, H = opts.height || 260, L = 56, R = 12, T = 12, B = 40;
    const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    const svg = el('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.title || 'chart' });
    if (!pts.length) {
      svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, opts.empty || 'No data yet.'));
      return el('div', { class: 'chart-box' }, svg);
    }
    let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
    let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
    if (opts.yMin !== undefined) y0 = Math.min(y0, opts.yMin);
    if (opts.yMax !== undefined) y1 = Math.max(y1, opts.yMax);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    const xf = opts.xFormat || ((v) => String(v));
    const yf = opts.yFormat || ((v) => String(+v.toPrecision(4)));
    for (const v of ticks(y0, y1, 5)) {
      svg.append(el('line', { class: 'grid', x1: L, x2: W - R, y1: sy(v), y2: sy(v) }));
      svg.append(el('text', { x: L - 6, y: sy(v) + 4, 'text-anchor': 'end' }, yf(v)));
    }
    let xt = opts.xTicks ? opts.xTicks(x0, x1) : ticks(x0, x1, 6);
    if (opts.xInteger) xt = xt.filter((v) => Number.isInteger(v));
    for (const v of xt) {
      svg.append(el('line', { class: 'axis', x1: sx(v), x2: sx(v), y1: H - B, y2: H - B + 4 }));
      svg.append(el('text', { x: sx(v), y: H - B + 16, 'text-anchor': 'middle' }, xf(v)));
    }
    svg.append(el('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.append(el('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    if (opts.xLabel) svg.append(el('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle' }, opts.xLabel));
    if (opts.yLabel) {
      svg.append(el('text', { x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle',
        transform: `rotate(-90 12 ${(T + H - B) / 2})` }, opts.yLabel));
    }
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const good = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
      const g = el('g', { class: 'series', 'data-name': s.name, 'data-points': good.length });
      if (s.kind === 'dots') {
        for (const p of good) {
          g.append(el('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: color },
            el('title', {}, `${s.name}: ${xf(p[0])} → ${yf(p[1])}`)));
        }
      } else if (good.length === 1) {
        g.append(el('circle', { cx: sx(good[0][0]), cy: sy(good[0][1]), r: 3, fill: color }));
      } else if (good.length) {
        g.append(el('polyline', { fill: 'none', stroke: color, 'stroke-width': 2,
          points: good.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' ') }));
      }
      svg.append(g);
    });
    const legend = el('div', { class: 'legend' }, series.map((s, i) =>
      el('span', {}, el('i', { style: `background:${s.color || COLORS[i % COLORS.length]}` }), s.name)));
    return el('div', { class: 'chart-box' }, legend, svg);
  }

  // Reads a file input's file as bytes.
  const fileBytes = (input) => new Promise((resolve, reject) => {
    const f = input.files && input.files[0];
    if (!f) return reject(new Error('Choose a file first.'));
    const r = new FileReader();
    r.onload = () => resolve({ name: f.name, bytes: r.result });
    r.onerror = () => reject(new Error('Cannot read ' + f.name));
    r.readAsArrayBuffer(f);
  });

  // A form whose submit runs `action(form)`, with the button disabled
  // meanwhile and any error in the banner.
  function form(attrs, fields, label, action) {
    const button = el('button', { type: 'submit' }, label);
    const f = el('form', Object.assign({ class: 'inline' }, attrs), fields, button);
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      button.disabled = true;
      clear();
      try { await action(f); } catch (err) { show(err); } finally { button.disabled = false; }
    });
    return f;
  }
  const field = (label, input) => el('label', {}, label, input);

  function header() {
    const u = me();
    for (const a of document.querySelectorAll('header nav a')) {
      if (a.dataset.admin) a.hidden = !can(ADMINS);
      const here = location.pathname === a.getAttribute('href') ||
        (a.getAttribute('href') !== '/ui/' && location.pathname.startsWith(a.getAttribute('href')));
      if (here) a.classList.add('here');
    }
    const who = document.getElementById('who');
    who.textContent = '';
    if (u) {
      who.append(`${u.email} (${u.role})`, el('button', { class: 'plain', type: 'button', id: 'signout',
        onclick: async () => {
          try { await request('DELETE', '/api/tokens/current', { keepSession: true }); } catch (_) { /* gone anyway */ }
          signOut();
          toLogin();
        } }, 'Sign out'));
    }
  }

  // Runs a page: signed-in pages send a visitor without a session to the
  // sign-in page first. `page(content, arg)` fills the main area.
  async function start(page, opts = {}) {
    if (!opts.public && !token()) return toLogin();
    header();
    const content = document.getElementById('content');
    const arg = document.body.dataset.arg || '';
    try {
      await page(content, arg);
    } catch (e) {
      show(e);
    }
    // The page shows its data: load-time measurements read this mark.
    performance.mark('boat-ready');
  }

  const setContent = (content, ...nodes) => { content.textContent = ''; content.append(...nodes); };

  return { ApiError, ADMINS, request, token, me, signIn, signOut, can, show, info, clear, el, table, fmt,
    every, chart, ticks, fileBytes, form, field, start, setContent, toLogin };
})();
