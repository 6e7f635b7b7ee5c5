#!/usr/bin/env node
// server.mjs - an example application backend for Herald's proxy hooks and
// webhooks (docs/backend.md), in plain Node (http + crypto, Node 18 or later,
// no framework, no packages).
//
// What it does, one log line per call:
//   GET  /              a tiny login page (a name; no password: it is a demo)
//   POST /login         sets the session cookie `sid` (HttpOnly, SameSite=Lax)
//                       and redirects to the chat page (a form) or answers
//                       {"user","name"} (JSON body); POST /logout drops it
//   POST /herald/connect    the connect hook: Cookie sid -> user; no or unknown
//                       sid -> error 1000 "log in first" (no anonymous users)
//   POST /herald/refresh    the refresh hook: the user still has a session? (a
//                       connection expires SESSION_TTL_S after connect or refresh)
//   POST /herald/subscribe  chat:private only for PRIVATE_USERS, else allowed
//   POST /herald/publish    chat:* messages are checked, stored (memory, and
//                       STORE_FILE as JSON lines when set) and returned rewritten
//                       with the user's name and the server's time
//   POST /herald/rpc        chat.history (the last N stored messages of a room)
//                       and chat.users (who logged in, who is connected)
//   POST /herald/webhook    webhooks: X-Herald-Signature checked (401 if bad),
//                       each event logged once (deduplicated by its id: delivery
//                       is at least once); client_connected/disconnected keep
//                       the "connected" counts that chat.users reports
// Herald authenticates itself to the hooks with a static header
// (HOOK_HEADER_NAME: HOOK_KEY, Herald's proxy.headers); without HOOK_KEY the
// hooks accept any caller (listen on loopback only, then).
//
// Configuration (environment): BACKEND_LISTEN (127.0.0.1:8090), HERALD_URL
// (http://127.0.0.1:8080, where /login sends the browser), WEBHOOK_SECRET,
// HOOK_KEY, STORE_FILE, PRIVATE_USERS (comma-separated names, "ann,bob"),
// SESSION_TTL_S (600; 0 = connections never expire).
// examples/backend/README.md says how to point Herald at it.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';

const env = process.env;
const [HOST, PORT] = splitListen(env.BACKEND_LISTEN || '127.0.0.1:8090');
const HERALD_URL = (env.HERALD_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WEBHOOK_SECRET = env.WEBHOOK_SECRET || '';
const HOOK_KEY = env.HOOK_KEY || '';
const HOOK_HEADER_NAME = 'x-herald-key';
const STORE_FILE = env.STORE_FILE || '';
const SESSION_TTL_S = Number(env.SESSION_TTL_S || 600); // a connection's expire_at; the refresh hook extends it
const PRIVATE_USERS = new Set((env.PRIVATE_USERS ?? 'ann,bob').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
const MAX_BODY = 256 * 1024;       // a request body larger than this is refused (413)
const MAX_TEXT = 1000;             // characters in one chat message
const KEEP_PER_ROOM = 1000;        // stored messages kept in memory per room
const HISTORY_MAX = 100;           // chat.history's largest limit
const SIGNATURE_MAX_AGE_S = 300;   // webhook timestamps older than this are replays
const SEEN_EVENTS_MAX = 10000;     // webhook event ids remembered for deduplication
const MAX_SESSIONS = 10000;        // more logins drop the oldest session
const MAX_USERS = 10000;           // more new names are refused (429)

const sessions = new Map();        // sid -> {user, name}
const users = new Map();           // user id -> {user, name, connected: count}
const rooms = new Map();           // channel -> [stored message]
const seenEvents = new Set();      // webhook event ids, oldest first
let nextUser = 1;
let nextMessage = 1;
let selfUrl = `http://${HOST}:${PORT}`; // with the real port once listening

function splitListen(s) {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i) || '127.0.0.1', Number(s.slice(i + 1))];
}

function log(...parts) {
  console.log(new Date().toISOString().slice(11, 23), ...parts);
}

// --- storage ---------------------------------------------------------------

function remember(m) {
  let list = rooms.get(m.channel);
  if (!list) rooms.set(m.channel, (list = []));
  list.push(m);
  if (list.length > KEEP_PER_ROOM) list.splice(0, list.length - KEEP_PER_ROOM);
  nextMessage = Math.max(nextMessage, m.seq + 1);
}

function loadStore() {
  if (!STORE_FILE || !fs.existsSync(STORE_FILE)) return;
  for (const line of fs.readFileSync(STORE_FILE, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try { remember(JSON.parse(line)); } catch { log('store: skipped a bad line'); }
  }
  log(`store: ${[...rooms.values()].reduce((n, l) => n + l.length, 0)} messages loaded from ${STORE_FILE}`);
}

function store(m) {
  remember(m);
  if (STORE_FILE) fs.appendFile(STORE_FILE, JSON.stringify(m) + '\n', (e) => { if (e) log('store:', e.message); });
}

// --- sessions --------------------------------------------------------------

function cookie(header, name) {
  for (const part of String(header || '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return '';
}

function login(name) {
  const key = name.toLowerCase();
  let u = [...users.values()].find((x) => x.name.toLowerCase() === key);
  if (!u && users.size >= MAX_USERS) return null;
  if (!u) {
    u = { user: String(nextUser++), name, connected: 0 };
    users.set(u.user, u);
  }
  const sid = crypto.randomBytes(18).toString('base64url');
  sessions.set(sid, u);
  if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value);
  return { sid, u };
}

function hasSession(user) {
  for (const u of sessions.values()) if (u.user === user) return true;
  return false;
}

// --- hooks -----------------------------------------------------------------

const expireAt = () => (SESSION_TTL_S > 0 ? Math.floor(Date.now() / 1000) + SESSION_TTL_S : 0);
const fail = (code, message, temporary = false) => ({ error: { code, message, temporary } });
const ERR_LOGIN = () => fail(1000, 'log in first');

const hooks = {
  connect(req) {
    const sid = cookie(req.headers?.Cookie ?? req.headers?.cookie, 'sid');
    const u = sessions.get(sid);
    if (!u) return [ERR_LOGIN(), `no session (${sid ? 'unknown sid' : 'no cookie'}) -> error 1000`];
    return [{ result: { user: u.user, expire_at: expireAt(), info: { name: u.name }, data: { user: u.user, name: u.name } } },
      `sid -> user ${u.user} (${u.name})`];
  },
  refresh(req) {
    if (hasSession(req.user)) return [{ result: { expire_at: expireAt() } }, `user ${req.user} still logged in`];
    return [{ result: { expired: true } }, `user ${req.user} logged out -> expired`];
  },
  subscribe(req) {
    const u = users.get(req.user);
    if (!u) return [ERR_LOGIN(), `${req.channel}: no user -> error 1000`];
    if (req.channel === 'chat:private' && !PRIVATE_USERS.has(u.name.toLowerCase())) {
      return [fail(1403, 'private room'), `${req.channel}: ${u.name} not invited -> error 1403`];
    }
    return [{ result: {} }, `${req.channel}: ${u.name} allowed`];
  },
  publish(req) {
    const u = users.get(req.user);
    if (!u) return [ERR_LOGIN(), `${req.channel}: no user -> error 1000`];
    const d = req.data;
    if (d && typeof d === 'object' && d.type === 'msg') return publishMessage(req, u, d);
    // anything else in chat:* (read receipts): passed on, signed with the user's name
    if (d && typeof d === 'object' && !Array.isArray(d)) {
      return [{ result: { data: { ...d, name: u.name } } }, `${req.channel}: ${u.name} (not a message) passed on`];
    }
    return [fail(1400, 'data must be an object'), `${req.channel}: ${u.name} sent a non-object -> error 1400`];
  },
  rpc(req) {
    const fn = rpcs[req.method];
    if (!fn) return [fail(1404, `unknown method ${req.method}`), `${req.method}: unknown -> error 1404`];
    return fn(req.data ?? {}, req);
  },
};

function publishMessage(req, u, d) {
  const text = typeof d.text === 'string' ? d.text.trim() : '';
  if (!text || text.length > MAX_TEXT) {
    return [fail(1400, `text must be 1..${MAX_TEXT} characters`), `${req.channel}: ${u.name} bad text -> error 1400`];
  }
  const m = { seq: nextMessage++, channel: req.channel, user: u.user, name: u.name, text, time_ms: Date.now() };
  store(m);
  // the client's own id comes back, so the sender can match its pending line
  const data = { type: 'msg', id: typeof d.id === 'string' ? d.id.slice(0, 100) : String(m.seq), seq: m.seq,
    user: u.user, name: u.name, text, time_ms: m.time_ms };
  return [{ result: { data } }, `${req.channel}: stored #${m.seq} from ${u.name}: ${JSON.stringify(text.slice(0, 60))}`];
}

const rpcs = {
  'chat.history'(data) {
    const channel = typeof data.channel === 'string' ? data.channel : 'chat:lobby';
    const limit = Math.min(Math.max(Number(data.limit) || 50, 1), HISTORY_MAX);
    const messages = (rooms.get(channel) || []).slice(-limit).map((m) => ({ type: 'msg', id: String(m.seq), ...m }));
    return [{ result: { data: { channel, messages } } }, `chat.history ${channel}: ${messages.length} messages`];
  },
  'chat.users'() {
    const list = [...users.values()].map(({ user, name, connected }) => ({ user, name, online: connected > 0 }));
    return [{ result: { data: { users: list } } }, `chat.users: ${list.length} users, ${list.filter((x) => x.online).length} online`];
  },
};

// --- webhooks --------------------------------------------------------------

/** X-Herald-Signature: t=UNIXSECONDS,v1=HEX(HMAC-SHA256(secret, "t." + body)). */
function signatureOk(header, body) {
  if (!WEBHOOK_SECRET) return true;
  const parts = Object.fromEntries(String(header || '').split(',').map((p) => p.trim().split('=', 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(parts.v1 || '')) return false;
  if (Math.abs(Date.now() / 1000 - t) > SIGNATURE_MAX_AGE_S) return false;
  const want = crypto.createHmac('sha256', WEBHOOK_SECRET).update(`${t}.`).update(body).digest();
  return crypto.timingSafeEqual(want, Buffer.from(parts.v1, 'hex'));
}

/** Delivery is at least once (a retried batch comes again): events are deduplicated by `id`. */
function firstTime(id) {
  if (typeof id !== 'string') return true;
  if (seenEvents.has(id)) return false;
  seenEvents.add(id);
  if (seenEvents.size > SEEN_EVENTS_MAX) seenEvents.delete(seenEvents.values().next().value);
  return true;
}

function webhook(body) {
  const { events } = JSON.parse(body);
  for (const e of Array.isArray(events) ? events : []) {
    if (!firstTime(e.id)) { log('webhook', e.event, `${e.id}: seen already, skipped`); continue; }
    const u = users.get(e.user);
    if (u && e.event === 'client_connected') u.connected++;
    if (u && e.event === 'client_disconnected') u.connected = Math.max(0, u.connected - 1);
    const { event, time_ms: _, ...rest } = e;
    log('webhook', event, JSON.stringify(rest));
  }
}

// --- HTTP ------------------------------------------------------------------

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const type = typeof body === 'string' ? 'text/html; charset=utf-8' : 'application/json';
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > MAX_BODY) { reject(Object.assign(new Error('body too large'), { status: 413 })); req.destroy(); }
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const LOGIN_PAGE = `<!doctype html><meta charset="utf-8"><title>Log in — Herald chat</title>
<link rel="stylesheet" href="${HERALD_URL}/style.css">
<main><section class="card"><h1>Log in</h1>
<p>Any name will do (the example backend has no passwords). ${[...PRIVATE_USERS].join(', ') || 'Nobody'} may also enter <code>chat:private</code>.</p>
<form method="post" action="/login"><input name="name" placeholder="Your name" autofocus required maxlength="40">
<button type="submit">Log in and chat</button></form></section></main>`;

async function onLogin(req, res) {
  const raw = (await readBody(req)).toString('utf8');
  const json = (req.headers['content-type'] || '').startsWith('application/json');
  let name = '';
  try { name = String((json ? JSON.parse(raw) : Object.fromEntries(new URLSearchParams(raw))).name || ''); } catch { /* bad body */ }
  name = name.replace(/[^\p{L}\p{N} ._-]/gu, '').trim().slice(0, 40);
  if (!name) return send(res, 400, { error: 'name: 1..40 letters, digits, space . _ -' });
  const session = login(name);
  if (!session) return send(res, 429, { error: 'too many users on this demo backend' });
  const { sid, u } = session;
  log(`login ${u.name} -> user ${u.user}`);
  const set = { 'Set-Cookie': `sid=${sid}; Path=/; HttpOnly; SameSite=Lax` };
  if (json) return send(res, 200, { user: u.user, name: u.name }, set);
  res.writeHead(303, { ...set, Location: `${HERALD_URL}/chat.html?backend=${encodeURIComponent(selfUrl)}` });
  res.end();
}

function onLogout(req, res) {
  const sid = cookie(req.headers.cookie, 'sid');
  const u = sessions.get(sid);
  sessions.delete(sid);
  log(`logout ${u ? u.name : '(no session)'}`);
  send(res, 200, {}, { 'Set-Cookie': 'sid=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0' });
}

async function onHook(name, req, res) {
  const body = await readBody(req);
  if (name === 'webhook') {
    if (!signatureOk(req.headers['x-herald-signature'], body)) {
      log('webhook: bad or missing signature -> 401');
      return send(res, 401, { error: 'bad signature' });
    }
    webhook(body.toString('utf8'));
    return send(res, 200, {});
  }
  if (HOOK_KEY && req.headers[HOOK_HEADER_NAME] !== HOOK_KEY) {
    log(`${name}: caller without the hook key -> 401`);
    return send(res, 401, { error: 'unknown caller' });
  }
  const hook = hooks[name];
  if (!hook) return send(res, 404, { error: 'no such hook' });
  const [answer, what] = hook(JSON.parse(body.toString('utf8')));
  log(name, what);
  send(res, 200, answer);
}

async function route(req, res) {
  const url = new URL(req.url, 'http://backend');
  if (req.method === 'GET' && url.pathname === '/') return send(res, 200, LOGIN_PAGE);
  if (req.method === 'POST' && url.pathname === '/login') return onLogin(req, res);
  if (req.method === 'POST' && url.pathname === '/logout') return onLogout(req, res);
  const m = /^\/herald\/([a-z]+)$/.exec(url.pathname);
  if (req.method === 'POST' && m) return onHook(m[1], req, res);
  send(res, 404, { error: 'not found' });
}

const server = http.createServer((req, res) => {
  route(req, res).catch((e) => {
    log(`${req.method} ${req.url}: ${e.message}`);
    if (!res.headersSent) send(res, e.status || 400, { error: e.message });
  });
});
server.keepAliveTimeout = 60000; // Herald keeps its hook connections alive
loadStore();
server.listen(PORT, HOST, () => {
  selfUrl = `http://${HOST}:${server.address().port}`;
  log(`example backend on ${selfUrl} (hooks under /herald/, log in at /), Herald at ${HERALD_URL}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { server.close(); process.exit(0); });
