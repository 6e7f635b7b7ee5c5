// test_pusher_webhook.mjs - Pusher-format webhooks (docs/pusher.md, "Webhooks")
// from the REAL herald binary to a small HTTP server in this test, checked with
// the `pusher` server library's own WebHook validation (X-Pusher-Key,
// X-Pusher-Signature = HMAC-SHA256 of the body with the app's secret):
// channel_occupied, member_added, client_event, member_removed and
// channel_vacated caused by pusher-js clients, in Pusher's batched body
// {"time_ms":..,"events":[...]}; a second app's webhook_events filter and its
// own secret; a server-to-user channel is never reported.
//
// Run: node --test tests/integration/test_pusher_webhook.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import PusherJS from 'pusher-js';
import PusherServer from 'pusher';
import { startHerald, annotate, SLOW, sleep } from './lib/herald.mjs';
import { pusherOptions, signedAuth } from './lib/pusher.mjs';

const T = (ms) => ms * SLOW;
const ONE = { appId: '11', key: 'key-one', secret: 'secret-one' };
const TWO = { appId: '22', key: 'key-two', secret: 'secret-two' };
let h, hook;
const bodies = []; // {app, valid, body}
const clients = [];

before(async () => {
  const libs = { [ONE.key]: new PusherServer({ ...ONE }), [TWO.key]: new PusherServer({ ...TWO }) };
  hook = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
      const lib = libs[headers['x-pusher-key']];
      const wh = lib ? lib.webhook({ headers, rawBody: raw }) : null;
      bodies.push({ key: headers['x-pusher-key'], valid: !!wh && wh.isValid(), body: JSON.parse(raw) });
      res.writeHead(200).end('{}');
    });
  });
  await new Promise((r) => hook.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${hook.address().port}/pusher/webhook`;
  h = await startHerald([
    `--pusher.app.one.app_id=${ONE.appId}`, `--pusher.app.one.key=${ONE.key}`, `--pusher.app.one.secret=${ONE.secret}`,
    '--pusher.app.one.client_events=true', '--pusher.app.one.user_authentication=true',
    `--pusher.app.one.webhook_url=${url}`,
    `--pusher.app.two.app_id=${TWO.appId}`, `--pusher.app.two.key=${TWO.key}`, `--pusher.app.two.secret=${TWO.secret}`,
    `--pusher.app.two.webhook_url=${url}`, '--pusher.app.two.webhook_events=channel_vacated',
    '--webhook.batch_max_delay=50ms',
  ]);
});
after(async () => {
  for (const c of clients) c.disconnect();
  if (h) await h.stop();
  hook?.close();
});

async function guarded(fn) {
  try { return await fn(); } catch (e) { throw annotate(e, h); }
}

function client(app, user) {
  const lib = new PusherServer({ ...app });
  const c = new PusherJS(app.key, pusherOptions(h.port, signedAuth(lib, user)));
  clients.push(c);
  return c;
}

async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

function subscribed(c, name) {
  const ch = c.subscribe(name);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`subscribe ${name} timed out`)), T(5000));
    ch.bind('pusher:subscription_succeeded', () => { clearTimeout(t); resolve(ch); });
  });
}

const events = (key) => bodies.filter((b) => b.key === key).flatMap((b) => b.body.events);
const names = (key) => events(key).map((e) => `${e.name}:${e.channel}${e.user_id ? `:${e.user_id}` : ''}`);

test('occupied, member_added, client_event, member_removed, vacated: signed, batched', { timeout: T(30000) }, () => guarded(async () => {
  const a = client(ONE, 'ann'), b = client(ONE, 'bob');
  const pa = await subscribed(a, 'presence-room');
  const pb = await subscribed(b, 'presence-room');
  const got = [];
  pb.bind('client-typing', (d) => got.push(d));
  await until(() => names(ONE.key).includes('member_added:presence-room:bob'), T(5000), 'member_added for bob');
  pa.trigger('client-typing', { on: true });
  await until(() => got.length === 1, T(5000), 'client event delivered');
  await until(() => events(ONE.key).some((e) => e.name === 'client_event'), T(5000), 'client_event webhook');
  b.unsubscribe('presence-room');
  await until(() => names(ONE.key).includes('member_removed:presence-room:bob'), T(5000), 'member_removed for bob');
  a.unsubscribe('presence-room');
  await until(() => names(ONE.key).includes('channel_vacated:presence-room'), T(5000), 'channel_vacated');
  assert.deepEqual(names(ONE.key), [
    'channel_occupied:presence-room', 'member_added:presence-room:ann', 'member_added:presence-room:bob',
    'client_event:presence-room:ann', 'member_removed:presence-room:bob', 'member_removed:presence-room:ann',
    'channel_vacated:presence-room',
  ]);
  const ce = events(ONE.key).find((e) => e.name === 'client_event');
  assert.deepEqual(ce, { name: 'client_event', channel: 'presence-room', event: 'client-typing',
    data: '{"on":true}', socket_id: a.connection.socket_id, user_id: 'ann' });
  for (const b2 of bodies.filter((x) => x.key === ONE.key)) {
    assert.equal(b2.valid, true, 'the pusher library validates the signature');
    assert.equal(typeof b2.body.time_ms, 'number');
    assert.ok(Math.abs(b2.body.time_ms - Date.now()) < 60000);
  }
}));

test('webhook_events filters per app, each app signs with its own secret; user channels unreported', { timeout: T(30000) }, () => guarded(async () => {
  const c = client(TWO, 'zed');
  await subscribed(c, 'news');
  c.unsubscribe('news');
  const d = client(ONE, 'dora');
  await new Promise((r) => { d.connection.bind('connected', r); });
  d.signin();
  await sleep(T(300));
  d.disconnect();
  await until(() => names(TWO.key).length === 1, T(5000), 'app two\'s channel_vacated');
  await sleep(T(300));
  assert.deepEqual(names(TWO.key), ['channel_vacated:news'], 'only the events app two asked for');
  assert.ok(bodies.filter((b) => b.key === TWO.key).every((b) => b.valid), 'signed with app two\'s secret');
  assert.ok(!events(ONE.key).some((e) => e.channel.startsWith('#')), 'no server-to-user channel reported');
}));
