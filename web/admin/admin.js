// admin.js - the admin UI (docs/operations.md "Admin UI"). Vanilla JS, no
// framework and no build step: the binary embeds this file as it is.
//
// Log in (POST api/login → a session cookie the page never sees, and a CSRF
// token kept in sessionStorage and sent as X-Herald-CSRF on every action);
// then get a connection credential (api/token) and subscribe to the nodes'
// statistics on $admin:stats over Herald's own native WebSocket protocol.
// Each node publishes a snapshot every admin.stats_interval; rates come from
// two successive snapshots of one node; a node whose snapshots stop for three
// intervals is marked stale. Actions (look up, publish, disconnect) are the
// server API's methods under api/<method>.
'use strict';

const $ = (id) => document.getElementById(id);
const POINTS = 120;                 // samples kept per chart
const state = {
  csrf: sessionStorage.getItem('herald_admin_csrf') || '',
  ws: null,
  retry: null,
  nodes: new Map(),                 // id → {snap, prev, seen, rate}
  conns: [],                        // chart series
  rates: [],
};

async function api(name, body) {
  const res = await fetch('api/' + name, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Herald-CSRF': state.csrf },
    body: JSON.stringify(body || {}),
  });
  let json = {};
  try { json = await res.json(); } catch (e) { /* an empty or non-JSON answer */ }
  if (res.status === 403 && name !== 'login' && /logged in/.test(json.error || '')) showLogin('Session ended: log in again.');
  if (!res.ok) throw new Error(json.error || ('HTTP ' + res.status));
  return json;
}

function showLogin(message) {
  stopLive();
  state.csrf = '';
  sessionStorage.removeItem('herald_admin_csrf');
  $('app-view').hidden = true;
  $('logout').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = message || '';
}

function showApp() {
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('logout').hidden = false;
  startLive();
}

// ---- live statistics over the native protocol -----------------------------

async function startLive() {
  stopLive();
  let tok;
  try { tok = await api('token'); } catch (e) { return; }
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify({ id: 1, connect: { name: 'herald-admin', token: tok.token } }) + '\n' +
            JSON.stringify({ id: 2, subscribe: { channel: tok.channel } }));
  };
  ws.onmessage = (ev) => {
    for (const line of String(ev.data).split('\n')) {
      if (!line) continue;
      let m;
      try { m = JSON.parse(line); } catch (e) { continue; }
      if (m.id === 2 && m.result) setStatus(true);
      if (m.error) setStatus(false, m.error.message);
      if (m.pub && m.pub.data) onSnapshot(m.pub.data);
    }
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    setStatus(false);
    state.ws = null;
    state.retry = setTimeout(startLive, 2000);
  };
}

function stopLive() {
  clearTimeout(state.retry);
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  setStatus(false);
}

function setStatus(live, why) {
  const s = $('status');
  s.textContent = live ? 'live' : (why || 'offline');
  s.classList.toggle('live', live);
}

function onSnapshot(snap) {
  const now = Date.now();
  const n = state.nodes.get(snap.node) || { snap: null, rate: 0 };
  if (n.snap && snap.time_ms > n.snap.time_ms) {
    const dt = (snap.time_ms - n.snap.time_ms) / 1000;
    n.rate = Math.max(0, (snap.deliveries - n.snap.deliveries) / dt);
  }
  n.snap = snap;
  n.seen = now;
  state.nodes.set(snap.node, n);
}

function isStale(n, now) {
  return now - n.seen > 3 * Math.max(100, n.snap.interval_ms || 1000);
}

// One tick a second: totals over the live nodes, charts, tables.
function tick() {
  if ($('app-view').hidden) return;
  const now = Date.now();
  let conns = 0, rate = 0;
  const top = new Map();
  for (const n of state.nodes.values()) {
    if (isStale(n, now)) continue;
    conns += n.snap.connections;
    rate += n.rate;
    for (const t of n.snap.top || []) top.set(t.channel, (top.get(t.channel) || 0) + t.subscribers);
  }
  push(state.conns, conns);
  push(state.rates, rate);
  $('conns-now').textContent = String(conns);
  $('rate-now').textContent = rate.toFixed(0);
  draw($('chart-conns'), state.conns, '#2563eb');
  draw($('chart-rate'), state.rates, '#059669');
  renderNodes(now);
  renderTop(top);
}

function push(series, v) {
  series.push(v);
  if (series.length > POINTS) series.shift();
}

function draw(canvas, series, color) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...series) * 1.15;
  g.strokeStyle = '#e5e7eb';
  g.fillStyle = '#6b7280';
  g.font = '11px system-ui, sans-serif';
  for (let i = 0; i <= 2; i++) {
    const y = h - 14 - (h - 24) * i / 2;
    g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke();
    g.fillText(String(Math.round(max * i / 2)), 2, y - 2);
  }
  g.strokeStyle = color;
  g.lineWidth = 2;
  g.beginPath();
  series.forEach((v, i) => {
    const x = w - (series.length - 1 - i) * (w / (POINTS - 1));
    const y = h - 14 - (h - 24) * v / max;
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function uptime(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 120) return s + ' s';
  if (s < 7200) return Math.floor(s / 60) + ' min';
  return Math.floor(s / 3600) + ' h';
}

function renderNodes(now) {
  const body = $('nodes').tBodies[0];
  body.textContent = '';
  const ids = [...state.nodes.keys()].sort();
  for (const id of ids) {
    const n = state.nodes.get(id), s = n.snap, stale = isStale(n, now);
    const tr = document.createElement('tr');
    tr.dataset.node = id;
    cell(tr, id);
    cell(tr, stale ? 'stale' : 'up', stale ? 'stale' : 'up');
    cell(tr, String(s.connections));
    cell(tr, String(s.subscriptions));
    cell(tr, stale ? '-' : n.rate.toFixed(0));
    cell(tr, s.engine.name + (s.engine.shards_down ? ' (' + s.engine.shards_down + ' shard down)' : ''));
    cell(tr, uptime(s.uptime_ms));
    body.appendChild(tr);
  }
}

function renderTop(top) {
  const ol = $('top');
  ol.textContent = '';
  [...top.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10).forEach(([ch, n]) => {
    const li = document.createElement('li');
    li.textContent = ch + ' — ' + n + ' subscriber' + (n === 1 ? '' : 's');
    ol.appendChild(li);
  });
}

// ---- actions ---------------------------------------------------------------

function line(parent, label, value) {
  const p = document.createElement('p');
  const b = document.createElement('b');
  b.textContent = label + ': ';
  p.appendChild(b);
  p.appendChild(document.createTextNode(value));
  parent.appendChild(p);
  return p;
}

async function lookup(ch) {
  const out = $('lookup-result');
  out.textContent = '';
  const [chans, pres, hist] = await Promise.allSettled([
    api('channels', { pattern: ch }), api('presence', { channel: ch }), api('history', { channel: ch, limit: 10, reverse: true }),
  ]);
  const info = chans.status === 'fulfilled' ? chans.value.channels[ch] : null;
  line(out, 'subscribers', info ? String(info.subscribers) : chans.status === 'fulfilled' ? '0' : chans.reason.message).id = 'lookup-subscribers';
  if (pres.status === 'fulfilled') {
    const users = Object.values(pres.value.clients || {}).map((c) => c.user || '(anonymous) ' + c.client);
    line(out, 'presence', users.length ? users.join(', ') : 'nobody').id = 'lookup-presence';
  } else {
    line(out, 'presence', pres.reason.message).id = 'lookup-presence';
  }
  if (hist.status === 'fulfilled') {
    line(out, 'last offset', String(hist.value.offset));
    const pre = document.createElement('pre');
    pre.id = 'lookup-history';
    pre.textContent = (hist.value.publications || []).map((p) => p.offset + ': ' + JSON.stringify(p.data)).join('\n') || '(no history)';
    out.appendChild(pre);
  } else {
    line(out, 'history', hist.reason.message).id = 'lookup-history';
  }
}

function parseData(text) {
  try { return JSON.parse(text); } catch (e) { return text; }
}

function wire() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-error').textContent = '';
    try {
      const r = await api('login', { password: $('password').value });
      state.csrf = r.csrf;
      sessionStorage.setItem('herald_admin_csrf', r.csrf);
      $('password').value = '';
      showApp();
    } catch (e) {
      $('login-error').textContent = e.message;
    }
  });
  $('logout').addEventListener('click', async () => {
    try { await api('logout'); } catch (e) { /* gone already */ }
    showLogin('');
  });
  $('lookup-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    lookup($('lookup-channel').value.trim());
  });
  $('publish-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = $('publish-result');
    try {
      const r = await api('publish', { channel: $('publish-channel').value.trim(), data: parseData($('publish-data').value) });
      out.textContent = 'published at offset ' + r.offset;
    } catch (e) {
      out.textContent = 'refused: ' + e.message;
    }
  });
  $('disconnect-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = $('disconnect-result');
    const user = $('disconnect-user').value.trim();
    try {
      await api('disconnect', { user, reason: 'disconnected by an administrator' });
      out.textContent = 'disconnected ' + user;
    } catch (e) {
      out.textContent = 'refused: ' + e.message;
    }
  });
}

wire();
setInterval(tick, 1000);
if (state.csrf) showApp(); else showLogin('');
