// Bulkhead console. Plain JavaScript, no framework and no build step: the binary embeds this
// file as it is. Everything shown comes from the JSON API at the same origin; nothing here
// ever writes a value into the page as HTML (every value is a text node), and the API token
// is never stored by the page: signing in trades it for an HttpOnly session cookie.
'use strict';
(() => {
  const S = { role: null, csrf: null, timer: null, seq: 0, version: '', services: null, clusters: null };
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  const MODES = ['shared', 'schema', 'database'];
  const PHASES = ['planned', 'provisioned', 'copying', 'copied', 'cutover', 'switched', 'finalized'];

  // ---- DOM ---------------------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      // Through the CSSOM: the content security policy allows no style attributes.
      else if (k === 'style') el.style.cssText = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, kids);
    return el;
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  const svgNS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') el.textContent = v; else el.setAttribute(k, String(v));
    }
    for (const k of kids.flat()) if (k) el.appendChild(k);
    return el;
  }

  // ---- formatting --------------------------------------------------------------------------
  const nf = new Intl.NumberFormat();
  const num = (n) => (n === null || n === undefined ? '—' : nf.format(n));
  function bytes(n) {
    if (n === null || n === undefined) return '—';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0, v = Number(n);
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i === 0 ? 0 : v < 10 ? 2 : 1)} ${u[i]}`;
  }
  function millis(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms === 0) return '0';
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    return `${(ms / 60000).toFixed(1)} min`;
  }
  const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const when = (t) => (t ? timeFmt.format(new Date(t)) : '—');
  function ago(t) {
    if (!t) return '—';
    const s = (Date.now() - new Date(t).getTime()) / 1000;
    if (s < 5) return 'just now';
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }
  const timeCell = (t) => h('td', { class: 'nowrap', title: t ? `${when(t)} (${zone})` : null, text: t ? ago(t) : '—' });
  const modeTag = (m) => h('span', { class: `mode ${m}`, text: m });
  function stateBadge(state) {
    const cls = { active: 'ok', suspended: 'warn', failed: 'bad', moving: 'info', provisioning: 'info' }[state] || '';
    return h('span', { class: `badge ${cls}`, text: state });
  }
  const short = (id) => (id ? String(id).replace(/-/g, '').slice(0, 12) : '');

  // ---- API ---------------------------------------------------------------------------------
  class ApiFailure extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    let r;
    try {
      r = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiFailure(0, `the Bulkhead server at ${location.host} did not answer (${e.message}); is \`bulkhead up\` running?`);
    }
    let data = null;
    const text = await r.text();
    if (text) { try { data = JSON.parse(text); } catch (_) { data = null; } }
    if (!r.ok) {
      const message = (data && data.error && data.error.message) || `${r.status} ${r.statusText}`;
      if (r.status === 401 && path !== '/console/session') { S.role = null; signIn(message); }
      throw new ApiFailure(r.status, message);
    }
    return data;
  }
  const get = (p) => api('GET', p);
  const qs = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString();
  const canAct = () => S.role === 'admin';
  const readOnlyHint = 'The read-only console token can see but not act; sign in with the admin API token to change anything.';

  // ---- feedback ----------------------------------------------------------------------------
  function toast(message, bad) {
    let stack = document.getElementById('toasts');
    if (!stack) { stack = h('div', { id: 'toasts', class: 'toasts' }); document.body.appendChild(stack); }
    const t = h('div', { class: `toast${bad ? ' bad' : ''}`, role: 'status', text: message });
    stack.appendChild(t);
    setTimeout(() => t.remove(), bad ? 8000 : 4000);
  }
  function dialog(title, text, fields, submit, danger) {
    return new Promise((resolve) => {
      const inputs = {};
      const form = h('form', { method: 'dialog' },
        h('h3', { text: title }),
        text ? h('p', { text }) : null,
        fields.map((f) => {
          const input = f.options
            ? h('select', { name: f.name }, f.options.map(([v, label]) => h('option', { value: v, text: label, selected: v === f.value })))
            : h('input', { name: f.name, value: f.value || '', placeholder: f.placeholder || '', required: f.required, autocomplete: 'off' });
          inputs[f.name] = input;
          return h('label', { class: 'field' }, f.label, input);
        }),
        h('div', { class: 'actions' },
          h('button', { type: 'submit', value: 'ok', class: danger ? 'primary danger' : 'primary', text: submit }),
          h('button', { type: 'button', value: 'cancel', text: 'Cancel', onclick: () => d.close('cancel') })));
      const d = h('dialog', {}, form);
      d.addEventListener('close', () => {
        const ok = d.returnValue === 'ok';
        const values = {};
        for (const [k, el] of Object.entries(inputs)) values[k] = el.value.trim();
        d.remove();
        resolve(ok ? values : null);
      });
      document.body.appendChild(d);
      d.showModal();
    });
  }
  const confirmAction = (title, text, submit, danger) => dialog(title, text, [], submit, danger).then((v) => v !== null);

  // An action button: disabled for the read-only role, confirmed, done through the API,
  // then the page is drawn again.
  function actionButton(label, run, opts = {}) {
    const allowed = canAct() || opts.readOnlyOk;
    const b = h('button', {
      class: opts.danger ? 'danger' : opts.primary ? 'primary' : null,
      disabled: !allowed || opts.disabled,
      title: !allowed ? readOnlyHint : opts.title || null,
      'data-action': opts.id || label.toLowerCase().replace(/[^a-z]+/g, '-'),
      text: label,
    });
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const done = await run();
        if (done) toast(done);
        await draw(true);
      } catch (e) {
        toast(e.message, true);
      } finally {
        b.disabled = !allowed || opts.disabled;
      }
    });
    return b;
  }

  function table(columns, rows, empty, cls) {
    if (!rows.length) return h('div', { class: 'empty', text: empty || 'Nothing here yet.' });
    return h('div', { class: 'table-wrap' }, h('table', { class: cls || null },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, text: c.label })))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => {
        const v = c.cell(r);
        return v instanceof Node && v.tagName === 'TD' ? v : h('td', { class: c.num ? 'num' : null }, v);
      }))))));
  }
  const card = (title, hint, ...body) => h('section', { class: 'card' }, h('h2', {}, title, hint ? h('span', { class: 'hint', text: hint }) : null), body);
  const stat = (label, value, sub) => h('div', { class: 'stat' }, h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }), sub ? h('div', { class: 'sub', text: sub }) : null);
  const banner = (kind, text) => h('div', { class: `banner ${kind}`, role: kind === 'bad' ? 'alert' : null, text });

  // ---- charts ------------------------------------------------------------------------------
  function niceStep(max, ticks) {
    const raw = max / ticks, mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    const n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
  }
  // points: [{t: Date, v: number}], hourly; unit formats the y axis.
  function chart(title, points, fmt, since, until) {
    const W = 560, H = 200, L = 70, R = 14, T = 10, B = 30;
    const box = h('figure', { class: 'chart-box', 'data-chart': title, style: null });
    box.appendChild(h('figcaption', { class: 'chart-title', text: title }));
    const total = points.reduce((a, p) => a + p.v, 0);
    const max = Math.max(0, ...points.map((p) => p.v));
    const step = niceStep(max || 1, 4), top = Math.max(step, Math.ceil(max / step) * step);
    const t0 = since.getTime(), t1 = until.getTime();
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${fmt(total)} in the window` });
    for (let v = 0; v <= top + 1e-9; v += step) {
      svg.appendChild(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.appendChild(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', text: fmt(v) }));
    }
    const days = Math.round((t1 - t0) / 86400000);
    const tickEvery = days > 2 ? 86400000 : 6 * 3600000;
    const dayFmt = new Intl.DateTimeFormat(undefined, days > 2 ? { month: 'short', day: 'numeric' } : { hour: '2-digit', minute: '2-digit' });
    const first = new Date(t0); first.setMinutes(0, 0, 0); if (days > 2) first.setHours(0);
    for (let t = first.getTime() + tickEvery; t < t1; t += tickEvery) {
      svg.appendChild(s('line', { class: 'axis', x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4 }));
      svg.appendChild(s('text', { x: x(t), y: H - B + 16, 'text-anchor': 'middle', text: dayFmt.format(new Date(t)) }));
    }
    svg.appendChild(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    svg.appendChild(s('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    if (points.length) {
      const pts = points.map((p) => [x(p.t.getTime()), y(p.v)]);
      const line = pts.map(([a, b], i) => `${i ? 'L' : 'M'}${a.toFixed(1)},${b.toFixed(1)}`).join(' ');
      svg.appendChild(s('path', { class: 'area', d: `${line} L${pts[pts.length - 1][0].toFixed(1)},${H - B} L${pts[0][0].toFixed(1)},${H - B} Z` }));
      svg.appendChild(s('path', { class: 'line', d: line }));
      for (const p of points) {
        const c = s('circle', { class: 'dot', cx: x(p.t.getTime()), cy: y(p.v), r: points.length > 60 ? 1.5 : 3 });
        c.appendChild(s('title', { text: `${when(p.t)}: ${fmt(p.v)}` }));
        svg.appendChild(c);
      }
    } else {
      svg.appendChild(s('text', { x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle', text: 'no usage recorded in this window' }));
    }
    box.appendChild(svg);
    box.appendChild(h('div', { class: 'muted', text: `total ${fmt(total)} · hourly, ${zone}` }));
    return box;
  }

  // ---- layout ------------------------------------------------------------------------------
  const NAV = [['fleet', 'Fleet'], ['tenants', 'Tenants'], ['moves', 'Moves'], ['migrations', 'Migrations'], ['isolation', 'Isolation']];
  function logo(size) {
    return s('svg', { width: size, height: size, viewBox: '0 0 24 24', 'aria-hidden': 'true' },
      s('rect', { x: 2, y: 3, width: 20, height: 18, rx: 3, fill: '#0f766e' }),
      s('path', { d: 'M8 3v18M16 3v18', stroke: '#fff', 'stroke-width': 2 }),
      s('path', { d: 'M2 12h20', stroke: '#99f6e4', 'stroke-width': 1.5 }));
  }
  function shell(section, title, body) {
    const app = document.getElementById('app');
    const live = h('span', { class: 'meta', id: 'live' });
    app.replaceChildren(h('div', { class: 'shell' },
      h('aside', { class: 'side' },
        h('div', { class: 'brand' }, logo(24), 'Bulkhead'),
        h('nav', {}, NAV.map(([id, label]) => h('a', { href: `#/${id}`, class: id === section ? 'active' : null, text: label }))),
        h('div', { class: 'foot' }, `Bulkhead ${S.version}`, h('br'), `Times in ${zone}`)),
      h('div', { class: 'main' },
        h('header', { class: 'top' },
          h('h1', { text: title }), h('span', { class: 'spacer' }), live,
          h('span', { class: `badge ${S.role === 'admin' ? 'info' : 'warn'}`, title: S.role === 'admin' ? 'Signed in with the admin API token' : readOnlyHint, 'data-role': S.role, text: S.role === 'admin' ? 'admin' : 'read-only' }),
          h('button', { onclick: signOut, text: 'Sign out' })),
        h('main', { class: 'content', id: 'content' }, body))));
  }
  function setLive(refresh) {
    const el = document.getElementById('live');
    if (el) el.textContent = refresh ? `live · updated ${new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' }).format(new Date())}` : '';
  }

  // ---- sign in -----------------------------------------------------------------------------
  function signIn(message, fine) {
    clearTimeout(S.timer);
    const token = h('input', { type: 'password', name: 'token', placeholder: 'API token or read-only console token', autocomplete: 'current-password', required: true });
    const error = h('div', { class: `banner ${fine ? 'ok' : 'bad'}`, hidden: !message, role: 'alert', text: message || '' });
    const form = h('form', { class: 'signin-form' },
      h('h1', {}, logo(28), 'Bulkhead console'),
      h('p', { text: 'Sign in with the admin API token to act, or with the read-only console token to look. `bulkhead console` prints where both are.' }),
      error, h('label', { class: 'field' }, 'Token', token),
      h('button', { class: 'primary', type: 'submit', text: 'Sign in' }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const r = await api('POST', '/console/session', { token: token.value });
        S.role = r.role; S.csrf = r.csrf; token.value = '';
        if (!location.hash || location.hash === '#/') location.hash = '#/fleet';
        await draw();
      } catch (e) {
        error.hidden = false; error.className = 'banner bad'; error.textContent = e.message; token.select();
      }
    });
    document.getElementById('app').replaceChildren(h('div', { class: 'signin' }, form));
    token.focus();
  }
  async function signOut() {
    try { await api('DELETE', '/console/session'); } catch (_) { /* signed out either way */ }
    S.role = null; S.csrf = null; S.services = null; S.clusters = null;
    const stack = document.getElementById('toasts');
    if (stack) stack.replaceChildren();
    signIn('Signed out.', true);
  }

  // ---- pages -------------------------------------------------------------------------------
  async function services() {
    if (!S.services) S.services = await get('/v1/services');
    return S.services;
  }
  async function clusters() {
    if (!S.clusters) S.clusters = await get('/v1/clusters');
    return S.clusters;
  }

  async function fleetPage() {
    const f = await get('/v1/fleet');
    const tenants = Object.values(f.tenants).reduce((a, b) => a + b, 0);
    const down = f.clusters.filter((c) => !c.reachable);
    const g = f.gateway;
    const maxCell = Math.max(1, ...f.clusters.flatMap((c) => MODES.map((m) => c.tenants.modes[m] || 0)));
    const shade = (m, n) => `background: color-mix(in srgb, var(--${m}) ${n ? 12 + Math.round((n / maxCell) * 58) : 0}%, #f4f6f8); color: ${n / maxCell > 0.55 ? '#fff' : 'var(--ink)'}`;
    const used = g ? g.pools.reduce((a, p) => a + p.used, 0) : 0;
    const idle = g ? g.pools.reduce((a, p) => a + p.idle, 0) : 0;
    return h('div', {},
      down.length ? banner('bad', `${down.length === 1 ? 'A cluster is' : `${down.length} clusters are`} unreachable: ${down.map((c) => `${c.name} (${c.error})`).join('; ')}. Tenants placed there get errors until it answers again.`) : null,
      h('div', { class: 'grid stats' },
        stat('Tenants', num(tenants), `${num(f.tenants.active || 0)} active · ${num(f.tenants.suspended || 0)} suspended`),
        stat('Clusters', num(f.clusters.length), down.length ? `${down.length} unreachable` : 'all reachable'),
        stat('Services', num(f.services.length), `${num(f.services.reduce((a, x) => a + x.placements, 0))} placements`),
        stat('Gateway clients', g ? num(g.clients) : '—', g ? `${num(g.clients_total)} since start` : 'no gateway in this process'),
        stat('Backend connections', g ? num(used + idle) : '—', g ? `${num(used)} in use · ${num(idle)} idle` : '')),
      card('Placement map', 'tenants per cluster and isolation mode',
        table([
          { label: 'Cluster', cell: (c) => h('strong', { text: c.name }) },
          { label: 'Region', cell: (c) => c.region },
          ...MODES.map((m) => ({ label: m, cell: (c) => { const n = c.tenants.modes[m] || 0; return h('td', { class: 'cell', 'data-mode': m }, h('span', { style: shade(m, n), text: num(n) })); } })),
          { label: 'Total', num: true, cell: (c) => num(c.tenants.total) },
          { label: 'Capacity used', cell: (c) => {
            if (!c.capacity) return h('span', { class: 'muted', text: `${num(c.tenants.total)} (no capacity set)` });
            const p = c.tenants.total / c.capacity;
            return h('div', {}, h('div', { class: `bar ${p > 0.9 ? 'bad' : p > 0.75 ? 'warn' : ''}` }, h('div', { style: `width: ${Math.min(100, p * 100).toFixed(1)}%` })),
              h('span', { class: 'muted', text: `${num(c.tenants.total)} of ${num(c.capacity)} (${(p * 100).toFixed(0)} %)` }));
          } },
          { label: 'Mix', cell: (c) => modeMix(c.tenants) },
          { label: 'PostgreSQL', cell: (c) => c.server_version.split(' ')[0] },
          { label: 'Status', cell: (c) => c.reachable ? h('span', { class: 'badge ok', text: 'reachable' }) : h('span', { class: 'badge bad', title: c.error, text: 'unreachable' }) },
        ], f.clusters, 'No clusters: add one with `bulkhead cluster add`.', 'map'),
        h('div', { class: 'legend' }, MODES.map((m) => h('span', {}, h('i', { class: `swatch ${m}` }), m)))),
      card('Services', 'isolation policy: which mode a tier gets',
        table([
          { label: 'Service', cell: (x) => h('strong', { text: x.name }) },
          { label: 'Default mode', cell: (x) => modeTag(x.default_mode) },
          { label: 'Tier → mode', cell: (x) => { const e = Object.entries(x.tier_modes); return e.length ? e.map(([t, m]) => h('span', { class: 'nowrap', style: 'margin-right: 10px' }, `${t} → `, modeTag(m))) : h('span', { class: 'muted', text: 'every tier: default' }); } },
          { label: 'Cluster', cell: (x) => x.cluster },
          { label: 'Tenants', num: true, cell: (x) => num(x.placements) },
        ], f.services, 'No services: create one with `bulkhead service create`.')),
      g ? h('div', { class: 'grid two' },
        card('Gateway pools', 'backend connections per cluster',
          table([
            { label: 'Cluster', cell: (p) => p.cluster },
            { label: 'In use', num: true, cell: (p) => num(p.used) },
            { label: 'Idle', num: true, cell: (p) => num(p.idle) },
          ], g.pools, 'No backend connections open.'),
          h('p', { class: 'muted' }, `Checkouts that waited past the timeout: ${num(g.checkout_timeouts)}`)),
        card('Gateway traffic', 'since the gateway started',
          table([
            { label: 'Service', cell: (x) => x.service },
            { label: 'Queries', num: true, cell: (x) => num(x.queries) },
            { label: 'Mean latency', num: true, cell: (x) => millis(x.mean_ms) },
          ], g.services, 'No queries yet.'),
          h('h2', { style: 'margin-top: 14px; font-size: 14px', text: 'Errors and refusals' }),
          table([
            { label: 'Kind', cell: (x) => x[0] },
            { label: 'What', cell: (x) => x[2] },
            { label: 'Count', num: true, cell: (x) => num(x[1]) },
          ], [...Object.entries(g.errors).map(([k, v]) => [k, v, 'error']), ...Object.entries(g.refusals).map(([k, v]) => [k, v, 'guard refusal'])], 'None.'))) : null);
  }

  // One bar per cluster: its tenants' modes side by side, in proportion.
  function modeMix(counts) {
    const total = counts.total || 0;
    if (!total) return h('span', { class: 'muted', text: 'empty' });
    return h('div', { class: 'mix', title: MODES.map((m) => `${m}: ${num(counts.modes[m] || 0)}`).join(' · ') },
      MODES.filter((m) => counts.modes[m]).map((m) => h('div', { class: `mode-fill ${m}`, style: `width: ${((counts.modes[m] / total) * 100).toFixed(2)}%` })));
  }

  function tenantFilters(p, svc, cl) {
    const tiers = [...new Set(['free', ...svc.flatMap((x) => Object.keys(x.tier_modes))])].sort();
    const field = (label, el) => h('label', { class: 'field' }, label, el);
    const sel = (name, opts, value) => h('select', { name }, h('option', { value: '', text: 'any' }), opts.map((o) => h('option', { value: o, text: o, selected: o === value })));
    const form = h('form', { class: 'filters', role: 'search' },
      field('Search', h('input', { type: 'search', name: 'q', value: p.q || '', placeholder: 'slug, part of it, or id' })),
      field('Service', sel('service', svc.map((x) => x.name), p.service)),
      field('Mode', sel('mode', MODES, p.mode)),
      field('Cluster', sel('cluster', cl.map((x) => x.name), p.cluster)),
      field('Tier', sel('tier', tiers, p.tier)),
      field('Region', h('input', { name: 'region', value: p.region || '', placeholder: 'any', size: 10 })),
      field('State', sel('state', ['active', 'suspended'], p.state)),
      h('button', { type: 'submit', class: 'primary', text: 'Search' }));
    const go = () => {
      const v = Object.fromEntries(new FormData(form).entries());
      location.hash = `#/tenants?${qs(v)}`;
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); go(); });
    form.querySelectorAll('select').forEach((el) => el.addEventListener('change', go));
    return form;
  }

  async function tenantsPage(p) {
    const [svc, cl] = await Promise.all([services(), clusters()]);
    const limit = 50, offset = Math.max(0, parseInt(p.offset || '0', 10) || 0);
    const page = await get(`/v1/tenants/search?${qs({ ...p, limit, offset })}`);
    const to = (o) => `#/tenants?${qs({ ...p, offset: o })}`;
    const create = actionButton('New tenant', async () => {
      const v = await dialog('New tenant', 'Creates the tenant and, with a service, provisions its place in the mode the tier selects (or the mode given).', [
        { name: 'slug', label: 'Slug', placeholder: 'acme-corp', required: true },
        { name: 'tier', label: 'Tier', placeholder: 'free' },
        { name: 'service', label: 'Service', options: [['', 'none (record only)'], ...svc.map((x) => [x.name, x.name])], value: svc.length ? svc[0].name : '' },
        { name: 'mode', label: 'Mode', options: [['', 'as the service decides'], ...MODES.map((m) => [m, m])] },
      ], 'Create tenant');
      if (!v) return null;
      const t = await api('POST', '/v1/tenants', Object.fromEntries(Object.entries(v).filter(([, x]) => x)));
      S.services = null;
      location.hash = `#/tenants/${t.slug}`;
      return `Created ${t.slug}`;
    }, { primary: true, id: 'create-tenant' });
    return h('div', {},
      card('Tenants', `${num(page.total)} matching`,
        h('div', { class: 'actions', style: 'justify-content: space-between; align-items: flex-end' }, tenantFilters(p, svc, cl), create),
        table([
          { label: 'Slug', cell: (t) => h('a', { href: `#/tenants/${t.slug}`, 'data-tenant': t.slug, text: t.slug }) },
          { label: 'Id', cell: (t) => h('span', { class: 'mono', title: t.id, text: short(t.id) }) },
          { label: 'Tier', cell: (t) => t.tier },
          { label: 'Region', cell: (t) => t.region || h('span', { class: 'muted', text: 'any' }) },
          { label: 'State', cell: (t) => stateBadge(t.state) },
          { label: 'Placement', cell: (t) => t.placements.length ? t.placements.map((x) => h('div', { class: 'nowrap' }, modeTag(x.mode), ` ${x.service} @ ${x.cluster}`, x.state !== 'active' ? [' ', stateBadge(x.state)] : null)) : h('span', { class: 'muted', text: 'not placed' }) },
          timeColumn('Created', 'created_at'),
        ], page.tenants, p.q || p.service || p.mode || p.tier || p.state || p.region || p.cluster ? 'No tenant matches these filters.' : 'No tenants yet.'),
        h('div', { class: 'pager' },
          page.total ? `${num(offset + 1)}–${num(Math.min(offset + limit, page.total))} of ${num(page.total)}` : '',
          h('a', { class: 'button', href: to(Math.max(0, offset - limit)), 'aria-disabled': offset === 0, style: offset === 0 ? 'pointer-events: none; opacity: .4' : null, text: '← Previous' }),
          h('a', { class: 'button', href: to(offset + limit), 'data-next': true, style: offset + limit >= page.total ? 'pointer-events: none; opacity: .4' : null, text: 'Next →' }))));
  }
  const timeColumn = (label, key) => ({ label, cell: (r) => timeCell(r[key]) });

  async function tenantPage(slug) {
    const path = `/v1/tenants/${encodeURIComponent(slug)}`;
    const t = await get(path);
    const now = new Date();
    const until = new Date(Math.ceil(now.getTime() / 3600000) * 3600000);
    const since = new Date(until.getTime() - 7 * 86400000);
    const safe = (p) => p.catch((e) => ({ failed: e.message }));
    const [moves, keys, backups, usage, cost, audit, chain, gw, pitr] = await Promise.all([
      safe(get(`${path}/moves`)), safe(get(`${path}/keys`)), safe(get(`${path}/backups`)),
      safe(get(`/v1/usage/export?${qs({ tenant: t.id, since: since.toISOString(), until: until.toISOString(), format: 'json' })}`)),
      safe(get(`/v1/cost?${qs({ tenant: t.id })}`)),
      safe(get(`/v1/audit?${qs({ tenant: t.id, last: 50 })}`)),
      safe(get(`/v1/audit/verify?${qs({ tenant: t.id })}`)),
      safe(get('/v1/gateway')), safe(get('/v1/pitr')),
    ]);
    const failed = (x) => (x && x.failed ? banner('bad', x.failed) : null);
    // Counters are per hour: an hour without a row counted nothing. Storage is a level,
    // sampled: only its samples are drawn.
    const series = (metric, scale = 1, level = false) => {
      if (!Array.isArray(usage)) return [];
      const rows = usage.filter((r) => r.metric === metric);
      if (level) return rows.map((r) => ({ t: new Date(r.hour), v: r.quantity * scale }));
      const at = new Map(rows.map((r) => [new Date(r.hour).getTime(), r.quantity * scale]));
      if (!at.size) return [];
      const out = [];
      for (let t = since.getTime(); t < until.getTime(); t += 3600000) out.push({ t: new Date(t), v: at.get(t) || 0 });
      return out;
    };
    const suspended = t.state === 'suspended';
    const tierLimits = gw && gw.limits ? (gw.limits.tiers[t.tier] || gw.limits.default) : null;
    const hits = Array.isArray(audit) ? audit.filter((e) => e.action === 'gateway.limit_hit') : [];
    const myClusters = new Set(t.placements.map((x) => x.cluster));
    const windows = Array.isArray(pitr) ? pitr.filter((w) => myClusters.has(w.cluster)) : [];
    const costLine = cost && cost.tenants ? cost.tenants[0] : null;
    const clusterList = await clusters();

    const actions = h('div', { class: 'actions' },
      suspended
        ? actionButton('Resume', async () => { await api('POST', `${path}/resume`); return `Resumed ${t.slug}`; }, { primary: true })
        : actionButton('Suspend', async () => {
          if (!await confirmAction(`Suspend ${t.slug}?`, 'Its new logins and transactions are refused (SQLSTATE 57P03) until it is resumed. Its data stays.', 'Suspend', true)) return null;
          await api('POST', `${path}/suspend`); return `Suspended ${t.slug}`;
        }, { danger: true }),
      actionButton('Move…', async () => {
        const v = await dialog(`Move ${t.slug}`, 'An online move: the data is copied and replicated, then the tenant is held for a moment at cutover and switched, with the same tenant id. Progress shows on the Moves page.', [
          { name: 'to', label: 'To mode', options: MODES.map((m) => [m, m]), value: t.placements[0] && t.placements[0].mode === 'shared' ? 'schema' : 'shared' },
          { name: 'cluster', label: 'Cluster', options: [['', 'the same cluster'], ...clusterList.map((c) => [c.name, c.name])] },
        ], 'Start move');
        if (!v) return null;
        await api('POST', `${path}/move?wait=false`, v.cluster ? v : { to: v.to });
        location.hash = '#/moves';
        return `Moving ${t.slug} to ${v.to}`;
      }, { id: 'move' }),
      actionButton('Take backup', async () => {
        const b = await api('POST', `${path}/backups`);
        return `Backed up ${t.slug}: ${bytes(b.bytes)}, ${num(b.rows)} rows`;
      }, { id: 'backup' }));

    return h('div', {},
      h('div', { class: 'actions', style: 'justify-content: space-between; align-items: center; margin-bottom: 16px' },
        h('div', {}, h('h2', { style: 'margin: 0; font-size: 22px', 'data-slug': t.slug }, t.slug, ' ', stateBadge(t.state)),
          h('div', { class: 'muted mono', text: `${t.id} · tier ${t.tier} · region ${t.region || 'any'} · created ${when(t.created_at)}` })),
        actions),
      card('Placement', 'where its data lives',
        table([
          { label: 'Service', cell: (x) => x.service },
          { label: 'Mode', cell: (x) => modeTag(x.mode) },
          { label: 'Cluster', cell: (x) => x.cluster },
          { label: 'Database', cell: (x) => h('span', { class: 'mono', text: x.database }) },
          { label: 'Schema', cell: (x) => h('span', { class: 'mono', text: x.schema || '—' }) },
          { label: 'Epoch', num: true, cell: (x) => num(x.epoch) },
          { label: 'Migration', num: true, cell: (x) => `v${x.schema_version}` },
          { label: 'State', cell: (x) => [stateBadge(x.state), x.migration_error ? h('div', { class: 'muted', text: x.migration_error }) : null] },
        ], t.placements, 'Not placed in any service: a record only.')),
      card('Usage', `last 7 days, hourly · ${zone}`, failed(usage),
        h('div', { class: 'charts' },
          chart('Transactions per hour', series('transactions'), num, since, until),
          chart('Rows returned per hour', series('rows_returned'), num, since, until),
          chart('Bytes sent per hour', series('bytes_out'), bytes, since, until),
          chart('Backend time per hour', series('backend_time_us', 1 / 1000), millis, since, until),
          chart('Storage', series('storage_bytes', 1, true), bytes, since, until))),
      h('div', { class: 'grid two' },
        card('Cost', 'last 30 days, at the configured prices', failed(cost),
          costLine ? [h('div', { class: 'stat', style: 'border: 0; padding: 0 0 10px' }, h('div', { class: 'value', 'data-cost': costLine.cost, text: costLine.cost.toFixed(4) })),
            table([
              { label: 'Metric', cell: (i) => i.metric },
              { label: 'Units', num: true, cell: (i) => num(i.units) },
              { label: 'Price per unit', num: true, cell: (i) => String(i.price) },
              { label: 'Amount', num: true, cell: (i) => i.amount.toFixed(4) },
            ], costLine.items, 'No priced usage.')]
            : h('div', { class: 'empty', text: cost && cost.prices && !Object.keys(cost.prices).length ? 'No prices are configured: set [metering.prices] to see what this tenant costs.' : 'No priced usage in the last 30 days.' })),
        card('Limits', `tier ${t.tier}`, failed(gw),
          tierLimits ? h('dl', { class: 'facts' },
            h('dt', { text: 'Concurrent transactions' }), h('dd', { text: tierLimits.max_transactions ?? 'no limit' }),
            h('dt', { text: 'Transactions per second' }), h('dd', { text: tierLimits.transactions_per_second ?? 'no limit' }),
            h('dt', { text: 'Statement timeout' }), h('dd', { text: tierLimits.statement_timeout_ms ? millis(tierLimits.statement_timeout_ms) : 'none' })) : null,
          h('h2', { style: 'margin-top: 14px; font-size: 14px', text: 'Recent limit hits' }),
          table([timeColumn('When', 'at'), { label: 'Limit', cell: (e) => (e.details && (e.details.limit || e.details.kind)) || JSON.stringify(e.details) }], hits.slice(0, 10), 'No limit hit among its 50 latest audit events.'))),
      h('div', { class: 'grid two' },
        card('API keys', 'ids only: a key\u2019s secret is shown once, when it is issued', failed(keys),
          Array.isArray(keys) ? table([
            { label: 'Key id', cell: (k) => h('span', { class: 'mono', text: k.id }) },
            timeColumn('Issued', 'created_at'),
            { label: 'State', cell: (k) => k.revoked_at ? h('span', { class: 'badge', title: when(k.revoked_at), text: 'revoked' }) : h('span', { class: 'badge ok', text: 'active' }) },
            { label: '', cell: (k) => k.revoked_at ? '' : actionButton('Revoke', async () => {
              if (!await confirmAction('Revoke this key?', `Key ${k.id}: connections that log in with it are refused from now on.`, 'Revoke', true)) return null;
              await api('DELETE', `/v1/keys/${k.id}`); return `Revoked key ${k.id}`;
            }, { danger: true, id: 'revoke-key' }) },
          ], keys, 'No API keys.') : null),
        card('Backups and restore points', null, failed(backups), failed(pitr),
          Array.isArray(backups) ? table([
            timeColumn('Taken', 'taken_at'),
            { label: 'Service', cell: (b) => b.service },
            { label: 'Size', num: true, cell: (b) => bytes(b.bytes) },
            { label: 'Rows', num: true, cell: (b) => num(b.rows) },
            timeColumn('Expires', 'expires_at'),
          ], backups, 'No backups kept on the server; take one, or set a schedule in [backups].') : null,
          h('h2', { style: 'margin-top: 14px; font-size: 14px', text: 'Point in time' }),
          windows.length ? windows.map((w) => h('p', { 'data-pitr': w.cluster },
            h('span', { class: `badge ${w.archiving ? 'ok' : 'bad'}`, text: w.archiving ? 'archiving' : 'not archiving' }), ' ',
            w.recoverable_from ? `cluster ${w.cluster}: recoverable from ${when(w.recoverable_from)} to ${when(w.recoverable_to)} (${w.backups.length} base backups)` : `cluster ${w.cluster}: no base backup yet`))
            : h('div', { class: 'empty', text: 'No WAL archive covers this tenant\u2019s clusters: it cannot be rewound to a point in time.' }))),
      card('Moves', 'this tenant\u2019s moves, newest first', failed(moves),
        Array.isArray(moves) ? table(moveColumns(false), moves.map((m) => ({ ...m, slug: t.slug })), 'Never moved.') : null),
      card('Audit log', null, failed(audit), failed(chain),
        chain && chain.reports ? h('p', {}, chain.intact
          ? h('span', { class: 'badge ok', 'data-chain': 'intact', text: 'chain verified' })
          : h('span', { class: 'badge bad', 'data-chain': 'broken', text: 'chain broken' }),
        ` ${num(chain.entries)} entries in its chain${chain.intact ? ', every hash and the sealed head match.' : `: ${chain.reports.flatMap((r) => r.findings.map((f) => f.message)).join('; ')}`}`) : null,
        Array.isArray(audit) ? table([
          timeColumn('When', 'at'),
          { label: 'Actor', cell: (e) => e.actor },
          { label: 'Action', cell: (e) => h('span', { class: 'mono', text: e.action }) },
          { label: 'Details', cell: (e) => h('span', { class: 'mono muted', text: JSON.stringify(e.details) }) },
        ], audit, 'Nothing recorded yet.') : null));
  }

  function moveColumns(withActions) {
    const cols = [
      { label: 'Tenant', cell: (m) => m.slug ? h('a', { class: 'nowrap', href: `#/tenants/${m.slug}`, text: m.slug }) : h('span', { class: 'mono', text: short(m.tenant_id) }) },
      { label: 'From → to', cell: (m) => h('span', { class: 'nowrap' }, modeTag(m.from_mode), ` ${m.from_cluster} → `, modeTag(m.to_mode), ` ${m.to_cluster}`) },
      { label: 'Phase', cell: (m) => {
        const i = PHASES.indexOf(m.phase), running = m.live && m.live.running;
        return h('td', { 'data-phase': m.phase }, h('div', { class: 'phases', title: PHASES.join(' → ') },
          PHASES.slice(0, 6).map((p, j) => h('span', { class: i > j || (i === j && !running) ? 'done' : i === j ? 'now' : '' }))),
        h('span', { class: m.phase === 'aborted' || m.phase === 'rolled_back' ? 'badge warn' : m.phase === 'switched' || m.phase === 'finalized' ? 'badge ok' : 'badge info', text: m.phase.replace('_', ' ') }),
        m.error ? h('div', { class: 'muted', style: 'max-width: 340px', text: m.error }) : null);
      } },
      { label: 'Rows copied', num: true, cell: (m) => num(m.rows_copied) },
      { label: 'Rate', num: true, cell: (m) => {
        if (m.live && m.live.running && m.live.bytes_per_second) return `${bytes(m.live.bytes_per_second)}/s`;
        const end = m.switched_at || m.finished_at;
        if (!end || !m.rows_copied) return '—';
        const secs = (new Date(end) - new Date(m.created_at)) / 1000;
        return secs > 0 ? `${num(Math.round(m.rows_copied / secs))} rows/s` : '—';
      } },
      { label: 'Replication lag', num: true, cell: (m) => (m.live && m.live.running && m.live.lag_bytes !== null && m.live.lag_bytes !== undefined ? bytes(m.live.lag_bytes) : '—') },
      { label: 'Pause at cutover', num: true, cell: (m) => (m.pause_ms === null || m.pause_ms === undefined ? '—' : millis(m.pause_ms)) },
      timeColumn('Started', 'created_at'),
      timeColumn('Updated', 'updated_at'),
    ];
    if (withActions) {
      cols.push({ label: '', cell: (m) => h('div', { class: 'actions nowrap-actions' },
        m.phase === 'switched' ? actionButton('Finalize', async () => {
          if (!await confirmAction(`Finalize the move of ${m.slug}?`, 'Removes the kept source copy; the move can no longer be rolled back.', 'Finalize', true)) return null;
          await api('POST', `/v1/tenants/${m.tenant_id}/move/finalize`, { service: m.service }); return `Finalized the move of ${m.slug}`;
        }, { id: 'finalize' }) : null,
        m.phase === 'switched' || (PHASES.indexOf(m.phase) >= 0 && PHASES.indexOf(m.phase) < 5) ? actionButton('Roll back', async () => {
          if (!await confirmAction(`Roll back the move of ${m.slug}?`, m.phase === 'switched' ? 'Moves the tenant back where it was, online, with the writes made since.' : 'Stops the move; the tenant stays where it is.', 'Roll back', true)) return null;
          await api('POST', `/v1/tenants/${m.tenant_id}/move/rollback?wait=false`, { service: m.service }); return `Rolling back the move of ${m.slug}`;
        }, { danger: true, id: 'rollback' }) : null) });
    }
    return cols;
  }

  async function movesPage() {
    const [moves, cl] = await Promise.all([get('/v1/moves?limit=100'), clusters()]);
    const open = moves.filter((m) => PHASES.indexOf(m.phase) >= 0 && PHASES.indexOf(m.phase) < 5);
    const start = actionButton('Start a move…', async () => {
      const v = await dialog('Start a move', 'Moves one tenant online to another mode or cluster; the tenant keeps its id.', [
        { name: 'tenant', label: 'Tenant (slug or id)', required: true },
        { name: 'to', label: 'To mode', options: MODES.map((m) => [m, m]) },
        { name: 'cluster', label: 'Cluster', options: [['', 'the same cluster'], ...cl.map((c) => [c.name, c.name])] },
      ], 'Start move');
      if (!v) return null;
      await api('POST', `/v1/tenants/${encodeURIComponent(v.tenant)}/move?wait=false`, v.cluster ? { to: v.to, cluster: v.cluster } : { to: v.to });
      return `Moving ${v.tenant} to ${v.to}`;
    }, { primary: true, id: 'start-move' });
    return h('div', {},
      h('div', { class: 'grid stats' },
        stat('Under way', num(open.length), 'copying, catching up or at cutover'),
        stat('Awaiting finalize', num(moves.filter((m) => m.phase === 'switched').length), 'switched; the source is kept'),
        stat('Listed', num(moves.length), 'newest first')),
      card('Moves', 'refreshes every 2 s', h('div', { class: 'actions', style: 'margin-bottom: 12px' }, start),
        table(moveColumns(true), moves, 'No moves yet. Start one here or from a tenant\u2019s page.')));
  }

  async function migrationsPage() {
    const svc = await services();
    if (!svc.length) return card('Migrations', null, h('div', { class: 'empty', text: 'No services yet.' }));
    const all = await Promise.all(svc.map((x) => get(`/v1/services/${encodeURIComponent(x.name)}/migrations/summary?problems=100`).then((r) => ({ svc: x, m: r }), (e) => ({ svc: x, failed: e.message }))));
    return h('div', {}, all.map(({ svc: x, m, failed }) => {
      if (failed) return card(x.name, null, banner('bad', failed));
      const rolling = Object.keys(m.versions).length > 1 && !m.failed;
      const others = m.failed + m.behind - m.problems.length;
      return card(x.name, `latest migration v${m.latest}`,
        m.failed ? banner('bad', `${num(m.failed)} target${m.failed > 1 ? 's' : ''} failed to migrate; the others went on.`) : null,
        rolling ? banner('warn', `Rollout in progress: ${num(m.current)} of ${num(m.targets)} targets at v${m.latest}.`) : null,
        h('div', { class: 'grid stats' },
          stat('Targets', num(m.targets), 'pool, template, schemas, databases, tenants'),
          stat('Current', num(m.current), m.targets ? `${((m.current / m.targets) * 100).toFixed(1)} %` : ''),
          stat('Behind', num(m.behind), 'drift: not yet at the latest'),
          stat('Failed', num(m.failed), m.failed ? 'see below' : 'none')),
        h('div', { class: 'bar', style: 'height: 12px; margin-bottom: 12px', title: `${m.current} of ${m.targets} current` }, h('div', { style: `width: ${m.targets ? (m.current / m.targets) * 100 : 0}%` })),
        h('p', { class: 'muted' }, 'Versions: ', Object.entries(m.versions).sort((a, b) => b[0] - a[0]).map(([v, n]) => `v${v} × ${num(n)}`).join(' · ')),
        m.problems.length ? table([
          { label: 'Target', cell: (t) => h('span', { class: 'mono', text: t.target }) },
          { label: 'Kind', cell: (t) => t.kind },
          { label: 'Cluster', cell: (t) => t.cluster },
          { label: 'Version', num: true, cell: (t) => `v${t.version}` },
          { label: 'State', cell: (t) => h('span', { class: t.state.startsWith('failed') ? 'badge bad' : 'badge warn', style: 'white-space: normal', text: t.state }) },
        ], m.problems) : h('div', { class: 'empty', text: `Every target is at v${m.latest}: no drift.` }),
        others > 0 ? h('p', { class: 'muted', text: `… and ${num(others)} more (\`bulkhead migrate status ${x.name}\` lists them all).` }) : null);
    }));
  }

  async function isolationPage() {
    const [svc, runs] = await Promise.all([services(), get('/v1/proof')]);
    const latest = (service, kind) => runs.find((r) => r.kind === kind && (r.service || null) === service);
    const names = [null, ...svc.map((x) => x.name)];
    const run = (kind, service) => actionButton(kind === 'verify' ? 'Run verify' : 'Run probe', async () => {
      const q = service ? `?service=${encodeURIComponent(service)}` : '';
      toast(kind === 'verify' ? 'Verifying…' : 'Probing: attacking throwaway tenants in every mode…');
      if (kind === 'verify') await get(`/v1/verify${q}`); else await api('POST', `/v1/probe${q}`);
      return `${kind} finished`;
    // Verify only reads the catalogs, so the read-only role may run it too.
    }, { id: `run-${kind}`, primary: kind === 'verify', readOnlyOk: kind === 'verify' });
    const outcome = (r) => r
      ? h('p', {}, h('span', { class: `badge ${r.passed ? 'ok' : 'bad'}`, 'data-outcome': r.passed ? 'passed' : 'failed', text: r.passed ? 'passed' : 'failed' }), ` ${r.summary} · `, h('span', { title: when(r.ran_at), text: ago(r.ran_at) }))
      : h('p', { class: 'muted', text: 'Never run.' });
    return h('div', {},
      h('p', { class: 'muted', text: 'verify checks the catalog facts isolation rests on (forced RLS, policies, grants, search paths, keys); probe attacks two throwaway tenants in each mode through the gateway with every known vector. Both are also `bulkhead verify` and `bulkhead probe`.' }),
      names.map((name) => {
        const v = latest(name, 'verify'), p = latest(name, 'probe');
        const findings = v && v.report && v.report.findings ? v.report.findings : [];
        const rows = p && p.report && p.report.rows ? p.report.rows : [];
        return card(name || 'All services', name ? 'service' : 'every service at once',
          h('div', { class: 'grid two' },
            h('div', { 'data-proof': `verify:${name || ''}` }, h('h2', { style: 'font-size: 14px; margin: 0 0 6px', text: 'Verify' }), outcome(v),
              findings.length ? table([
                { label: 'Level', cell: (f) => h('span', { class: `badge ${f.level === 'fail' ? 'bad' : 'warn'}`, text: f.level }) },
                { label: 'Check', cell: (f) => f.check.replace(/_/g, ' ') },
                { label: 'Object', cell: (f) => h('span', { class: 'mono', text: `${f.target} ${f.object}` }) },
                { label: 'Detail', cell: (f) => f.detail },
              ], findings.slice(0, 50)) : null,
              h('div', { class: 'actions' }, run('verify', name))),
            h('div', { 'data-proof': `probe:${name || ''}` }, h('h2', { style: 'font-size: 14px; margin: 0 0 6px', text: 'Probe' }), outcome(p),
              rows.length ? h('details', {}, h('summary', { text: `${rows.length} attacks` }), table([
                { label: 'Vector', cell: (r) => r.vector },
                { label: 'Mode', cell: (r) => modeTag(r.mode) },
                { label: 'Outcome', cell: (r) => h('span', { class: `badge ${r.outcome === 'blocked' ? 'ok' : 'bad'}`, text: r.outcome }) },
              ], rows)) : null,
              h('div', { class: 'actions' }, run('probe', name)))));
      }));
  }

  // ---- routing -----------------------------------------------------------------------------
  function route() {
    const raw = (location.hash || '#/fleet').slice(2);
    const [path, query] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    const params = Object.fromEntries(new URLSearchParams(query || ''));
    switch (parts[0]) {
      case 'tenants':
        return parts[1]
          ? { section: 'tenants', title: `Tenant ${parts[1]}`, load: () => tenantPage(parts[1]), refresh: 15000 }
          : { section: 'tenants', title: 'Tenants', load: () => tenantsPage(params), refresh: 0 };
      case 'moves': return { section: 'moves', title: 'Moves', load: movesPage, refresh: 2000 };
      case 'migrations': return { section: 'migrations', title: 'Migrations', load: migrationsPage, refresh: 10000 };
      case 'isolation': return { section: 'isolation', title: 'Isolation', load: isolationPage, refresh: 10000 };
      default: return { section: 'fleet', title: 'Fleet', load: fleetPage, refresh: 5000 };
    }
  }
  // Draws the current page; `quiet` redraws in place (a live refresh or after an action).
  async function draw(quiet) {
    clearTimeout(S.timer);
    if (!S.role) return signIn();
    const r = route();
    const seq = ++S.seq;
    if (!quiet || !document.getElementById('content')) shell(r.section, r.title, h('div', { class: 'empty', text: 'Loading…' }));
    let body;
    try {
      body = await r.load();
    } catch (e) {
      if (e.status === 401) return undefined;
      body = banner('bad', e.message);
    }
    if (seq !== S.seq) return undefined;
    const content = document.getElementById('content');
    const busy = document.querySelector('dialog[open]') || (document.activeElement && content && content.contains(document.activeElement) && /INPUT|SELECT/.test(document.activeElement.tagName));
    if (!busy && content) {
      const y = window.scrollY;
      content.replaceChildren(body);
      window.scrollTo(0, y);
      document.title = `${r.title} · Bulkhead`;
    }
    setLive(r.refresh);
    if (r.refresh) S.timer = setTimeout(() => draw(true), r.refresh);
    return undefined;
  }

  async function boot() {
    try { S.version = (await get('/version')).version; } catch (_) { S.version = ''; }
    try {
      const who = await api('GET', '/console/session');
      S.role = who.role; S.csrf = who.csrf;
    } catch (_) { S.role = null; }
    window.addEventListener('hashchange', () => draw());
    await draw();
  }
  boot();
})();
