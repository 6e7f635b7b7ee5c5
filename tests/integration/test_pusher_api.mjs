// test_pusher_api.mjs - the Pusher HTTP API (/apps/{app_id}/...) as the `pusher`
// Node server library calls it, against the REAL herald binary, with pusher-js 8
// subscribers: trigger to one and to several channels, socket_id exclusion,
// batch events, the info parameter, channel queries (list with prefix and
// user_count, one channel, presence users), sendToUser and
// terminateUserConnections; and requests signed by hand: a bad signature, an
// expired timestamp, a replayed request, a wrong body_md5 (401), a malformed
// %-escape (400), unknown app (404), too many channels / a too big event (400 / 413).
//
// pusher-js closes the sockets herald terminated (4009) once more, and its
// WebSocket driver (faye-websocket) arms a 30 s close timer for a socket
// already closed: unrefCloseTimers keeps it from holding the process open.
//
// Run: node --test tests/integration/test_pusher_api.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import PusherJS from 'pusher-js';
import { startHerald, annotate, SLOW, sleep } from './lib/herald.mjs';
import { pusherOptions, signedAuth, unrefCloseTimers } from './lib/pusher.mjs';

unrefCloseTimers();

const require = createRequire(import.meta.url);
const PusherServer = require('pusher');

const T = (ms) => ms * SLOW;
const APP = { id: '4321', key: 'api-key', secret: 'api-secret' };
const OTHER = { id: '8765', key: 'other-key', secret: 'other-secret' }; // a second app: its users are its own
let h;
let server;
const clients = [];

before(async () => {
  h = await startHerald([
    `--pusher.app.main.app_id=${APP.id}`, `--pusher.app.main.key=${APP.key}`,
    `--pusher.app.main.secret=${APP.secret}`, '--pusher.app.main.user_authentication=true',
    '--pusher.app.main.max_event_channels=3', '--pusher.app.main.max_batch_events=4',
    '--pusher.app.main.api_replay_cache=100', '--channels.max_publication_size=2000',
    `--pusher.app.other.app_id=${OTHER.id}`, `--pusher.app.other.key=${OTHER.key}`,
    `--pusher.app.other.secret=${OTHER.secret}`, '--pusher.app.other.user_authentication=true',
  ]);
  server = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1',
    port: String(h.port), useTLS: false });
});
after(async () => {
  for (const c of clients) c.disconnect();
  if (h) await h.stop();
});

async function guarded(fn) {
  try { return await fn(); } catch (e) { throw annotate(e, h); }
}

/** A pusher-js client whose private/presence/signin auth is the server library's. */
function client(user, app = APP) {
  const lib = app === APP ? server : new PusherServer({ appId: app.id, key: app.key, secret: app.secret });
  const c = new PusherJS(app.key, pusherOptions(h.port, signedAuth(lib, user, { name: user })));
  clients.push(c);
  return c;
}

const once = (emitter, event, ms, what) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  emitter.bind(event, (d) => { clearTimeout(t); resolve(d); });
});

async function connected(c) {
  if (c.connection.state === 'connected') return c.connection.socket_id;
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('pusher-js did not connect')), T(5000));
    c.connection.bind('connected', () => { clearTimeout(t); resolve(); });
  });
  return c.connection.socket_id;
}

async function subscribed(c, name) {
  const ch = c.subscribe(name);
  await once(ch, 'pusher:subscription_succeeded', T(5000), `subscribe ${name}`);
  return ch;
}

/** Events of `name` on channel ch, collected. */
function collect(ch, name) {
  const got = [];
  ch.bind(name, (d) => got.push(d));
  return got;
}

async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

/** A request signed by hand: [status, text]. */
async function signed(method, path, { body, params = {}, ts = Math.floor(Date.now() / 1000), secret = APP.secret,
  tamper } = {}) {
  const q = { auth_key: APP.key, auth_timestamp: String(ts), auth_version: '1.0', ...params };
  if (body !== undefined) q.body_md5 = crypto.createHash('md5').update(body).digest('hex');
  const sorted = Object.keys(q).sort().map((k) => `${k}=${q[k]}`).join('&');
  const full = `/apps/${APP.id}${path}`;
  const sig = crypto.createHmac('sha256', secret).update(`${method}\n${full}\n${sorted}`).digest('hex');
  const url = `${h.url}${full}?${sorted}&auth_signature=${sig}`;
  const send = async () => {
    const r = await fetch(url, { method, body: tamper ?? body, headers: body ? { 'content-type': 'application/json' } : {} });
    return [r.status, await r.text()];
  };
  return { send, url };
}

test('trigger: one channel, several channels, socket_id exclusion', { timeout: T(20000) }, () => guarded(async () => {
  const a = client('alice'), b = client('bob');
  const [sa] = await Promise.all([connected(a), connected(b)]);
  const chA = await subscribed(a, 'orders'), chB = await subscribed(b, 'orders');
  const chB2 = await subscribed(b, 'private-audit');
  const gotA = collect(chA, 'created'), gotB = collect(chB, 'created'), gotB2 = collect(chB2, 'created');
  const res = await server.trigger('orders', 'created', { id: 1 });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  await server.trigger(['orders', 'private-audit'], 'created', { id: 2 });
  await server.trigger('orders', 'created', { id: 3 }, { socket_id: sa }); // not back to alice
  await until(() => gotB.length === 3 && gotB2.length === 1 && gotA.length === 2, T(5000), 'events delivered');
  assert.deepEqual(gotB, [{ id: 1 }, { id: 2 }, { id: 3 }]);
  assert.deepEqual(gotB2, [{ id: 2 }]);
  await sleep(T(200));
  assert.deepEqual(gotA, [{ id: 1 }, { id: 2 }], 'the excluded socket did not get event 3');
}));

test('trigger with info and batch events', { timeout: T(20000) }, () => guarded(async () => {
  const a = client('carol'), b = client('dave');
  await Promise.all([connected(a), connected(b)]);
  const pa = await subscribed(a, 'presence-room'), pb = await subscribed(b, 'presence-room');
  await subscribed(b, 'ticker');
  const res = await server.trigger(['presence-room', 'ticker'], 'tick', 'x', { info: 'user_count,subscription_count' });
  assert.deepEqual(await res.json(), { channels: {
    'presence-room': { user_count: 2, subscription_count: 2 }, ticker: { subscription_count: 1 } } });
  const gotA = collect(pa, 'b1'), gotB = collect(pb, 'b2');
  const bres = await server.triggerBatch([
    { channel: 'presence-room', name: 'b1', data: { n: 1 } },
    { channel: 'presence-room', name: 'b2', data: 'two', info: 'user_count' },
  ]);
  assert.deepEqual(await bres.json(), { batch: [{}, { user_count: 2 }] });
  await until(() => gotA.length === 1 && gotB.length === 1, T(5000), 'batch delivered');
  assert.deepEqual(gotA, [{ n: 1 }]);
  assert.equal(gotB[0], 'two');
}));

test('channel queries: list with prefix and user_count, one channel, users', { timeout: T(20000) }, () => guarded(async () => {
  const a = client('erin'), b = client('frank'), c = client('erin');
  await Promise.all([connected(a), connected(b), connected(c)]);
  await subscribed(a, 'presence-lobby');
  await subscribed(b, 'presence-lobby');
  await subscribed(c, 'presence-lobby'); // erin twice: one user
  await subscribed(b, 'news');
  const list = await (await server.get({ path: '/channels', params: { filter_by_prefix: 'presence-lob', info: 'user_count' } })).json();
  assert.deepEqual(list, { channels: { 'presence-lobby': { user_count: 2 } } });
  const all = await (await server.get({ path: '/channels' })).json();
  assert.deepEqual(all.channels.news, {});
  assert.ok(all.channels['presence-lobby']);
  const one = await (await server.get({ path: '/channels/presence-lobby', params: { info: 'user_count,subscription_count' } })).json();
  assert.deepEqual(one, { occupied: true, user_count: 2, subscription_count: 3 });
  const empty = await (await server.get({ path: '/channels/nobody-here', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(empty, { occupied: false, subscription_count: 0 });
  const users = await (await server.get({ path: '/channels/presence-lobby/users' })).json();
  assert.deepEqual(users, { users: [{ id: 'erin' }, { id: 'frank' }] });
  await assert.rejects(server.get({ path: '/channels', params: { info: 'user_count' } }), (e) => e.status === 400);
  await assert.rejects(server.get({ path: '/channels/news/users' }), (e) => e.status === 400);
}));

test('sendToUser and terminateUserConnections', { timeout: T(20000) }, () => guarded(async () => {
  const g1 = client('gina'), g2 = client('gina'), o = client('oscar'), other = client('gina', OTHER);
  await Promise.all([connected(g1), connected(g2), connected(o), connected(other)]);
  const signedIn = (c) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('signin timed out')), T(5000));
    c.bind('pusher:signin_success', () => { clearTimeout(t); resolve(); });
    c.signin();
  });
  await Promise.all([signedIn(g1), signedIn(g2), signedIn(o), signedIn(other)]);
  // the #server-to-user- subscription follows signin_success: sent before the server took it,
  // the event would reach nobody
  await until(() => [g1, g2, o, other].every((c) => c.user.serverToUserChannel?.subscribed), T(5000),
    'the #server-to-user- subscriptions');
  const got = [];
  g1.user.bind('note', (d) => got.push(d));
  await server.sendToUser('gina', 'note', { hi: 1 });
  await until(() => got.length === 1, T(5000), 'server-to-user event');
  assert.deepEqual(got, [{ hi: 1 }]);
  const states = [];
  for (const c of [g1, g2]) c.connection.bind('state_change', (s) => states.push(s.current));
  const res = await server.terminateUserConnections('gina');
  assert.equal(res.status, 200);
  await until(() => states.filter((s) => s === 'disconnected' || s === 'unavailable' || s === 'failed').length >= 2,
    T(5000), 'both of gina\'s connections closed');
  await sleep(T(300));
  assert.equal(o.connection.state, 'connected', 'another user is untouched');
  assert.equal(other.connection.state, 'connected', "another app's user with the same id is untouched");
}));

test('signed by hand: bad signature, expired, replayed, body_md5, unknown app', { timeout: T(20000) }, () => guarded(async () => {
  const body = JSON.stringify({ name: 'e', channel: 'c1', data: '{}' });
  const good = await signed('POST', '/events', { body });
  assert.deepEqual(await good.send(), [200, '{}']);
  const [st, text] = await good.send(); // the same request again
  assert.equal(st, 401);
  assert.match(text, /Replayed request/);
  const bad = await signed('POST', '/events', { body, secret: 'not-the-secret' });
  const [bs, bt] = await bad.send();
  assert.equal(bs, 401);
  assert.match(bt, /Invalid signature/);
  const old = await signed('POST', '/events', { body, ts: Math.floor(Date.now() / 1000) - 601 });
  const [os, ot] = await old.send();
  assert.equal(os, 401);
  assert.match(ot, /Timestamp expired/);
  const tampered = await signed('POST', '/events', { body, tamper: body.replace('c1', 'c2') });
  const [ts2, tt] = await tampered.send();
  assert.equal(ts2, 401);
  assert.match(tt, /body_md5/);
  const r = await fetch(`${h.url}/apps/999/channels?auth_key=${APP.key}`);
  assert.equal(r.status, 404);
  const get = await signed('GET', '/channels', { params: { filter_by_prefix: 'c' } });
  assert.equal((await get.send())[0], 200);
  // a '%' not followed by two hex digits: the query cannot be read, whatever it is signed with
  const mal = await signed('GET', '/channels', { params: { filter_by_prefix: 'c%zz' } });
  const [ms, mt] = await mal.send();
  assert.equal(ms, 400);
  assert.match(mt, /Malformed query string/);
}));

test('limits: max_event_channels, max_batch_events, event size, bad input', { timeout: T(20000) }, () => guarded(async () => {
  const post = async (path, obj) => (await signed('POST', path, { body: JSON.stringify(obj) })).send();
  let [s, t] = await post('/events', { name: 'e', channels: ['a', 'b', 'c', 'd'], data: '1' });
  assert.equal(s, 400);
  assert.match(t, /max_event_channels/);
  [s, t] = await post('/batch_events', { batch: Array.from({ length: 5 }, () => ({ name: 'e', channel: 'a', data: '1' })) });
  assert.equal(s, 400);
  assert.match(t, /max_batch_events/);
  [s] = await post('/events', { name: 'e', channel: 'a', data: 'x'.repeat(3000) });
  assert.equal(s, 413);
  [s, t] = await post('/events', { name: 'e', channel: 'bad name!', data: '1' });
  assert.equal(s, 400);
  assert.match(t, /Invalid channel/);
  [s, t] = await post('/events', { name: 'e', channel: 'a', data: '1', socket_id: 'nope' });
  assert.equal(s, 400);
  assert.match(t, /socket_id/);
  [s] = await post('/events', { channel: 'a', data: '1' });
  assert.equal(s, 400);
  const g = await signed('GET', '/events');
  assert.equal((await g.send())[0], 405);
}));
