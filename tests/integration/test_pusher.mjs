// test_pusher.mjs - the Pusher Channels protocol (/app/{key}, docs/pusher.md)
// against the real libraries: pusher-js 8 as the client, unmodified, and the
// `pusher` server library to sign channel authorizations and user signins
// (served by this test's own auth endpoint) and to encrypt, talking to the
// REAL herald binary on loopback. Raw `ws` connections check the wire where
// pusher-js hides it (error codes, pings).
//
// Covers: a public channel fed by Herald's /api/publish (a {"event","data"}
// object and plain data as "message"); private channels through an auth
// endpoint, and a bad signature refused with pusher:subscription_error; presence
// with two users seeing each other join and leave, one member per user_id
// over several connections; client events between two clients (not echoed,
// refused on public channels, 4301 past the rate); a private-encrypted
// round trip (the server library encrypts, Herald relays, pusher-js
// decrypts); cache channels; signin and a server-to-user event; the refusals
// (4001 unknown key, 4003 disabled, 4007/4008 protocol, 4009 signin, 4100 max_connections);
// ping/pong both ways and 4201 when the client does not answer.
//
// Run: node --test tests/integration/test_pusher.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import PusherJS from 'pusher-js';
import PusherServer from 'pusher';
import { startHerald, annotate, SLOW, withTimeout, sleep } from './lib/herald.mjs';
import { pusherOptions } from './lib/pusher.mjs';

const T = (ms) => ms * SLOW;
const API_KEY = 'pusherkey';
const APP = { appId: '1234', key: 'app-key', secret: 'app-secret' };
const MASTER_KEY = crypto.randomBytes(32).toString('base64');

let seq = 0;
const uniq = (p) => `${p}${process.pid}-${++seq}`;

/** Wait until pred() holds, polling; fail with `what` after ms. */
async function until(pred, what, ms = T(5000)) {
  await withTimeout((async () => { while (!pred()) await sleep(10); })(), ms, what);
}

describe('Pusher protocol with pusher-js and the pusher server library', () => {
  let herald;
  let authServer;
  let authUrl;
  const clients = [];
  const signer = new PusherServer({ ...APP, host: '127.0.0.1', encryptionMasterKeyBase64: MASTER_KEY });
  // what the auth endpoint answers for presence: user id per socket, set by each test
  const presenceUser = new Map();

  const api = async (method, body) => {
    const res = await fetch(`${herald.url}/api/${method}`, {
      method: 'POST', headers: { Authorization: `apikey ${API_KEY}` }, body: JSON.stringify(body),
    });
    const json = await res.json();
    assert.equal(res.status, 200, `${method}: ${JSON.stringify(json)}`);
    return json;
  };
  const herChan = (name) => `$pusher-${APP.appId}:${name}`;
  const publish = (name, data) => api('publish', { channel: herChan(name), data });

  /** A pusher-js client of the app (or another key), connected. */
  async function connect(opts = {}, key = APP.key) {
    const p = new PusherJS(key, pusherOptions(herald.port, {
      channelAuthorization: { endpoint: `${authUrl}/pusher/auth`, transport: 'ajax' },
      userAuthentication: { endpoint: `${authUrl}/pusher/user-auth`, transport: 'ajax' },
      ...opts,
    }));
    clients.push(p);
    await withTimeout(new Promise((resolve) => p.connection.bind('connected', resolve)), T(5000), 'pusher-js connected');
    return p;
  }

  /** Subscribe and wait for subscription_succeeded (or reject with the subscription_error). */
  function subscribe(p, name) {
    const ch = p.subscribe(name);
    return withTimeout(new Promise((resolve, reject) => {
      ch.bind('pusher:subscription_succeeded', () => resolve(ch));
      ch.bind('pusher:subscription_error', (e) => reject(Object.assign(new Error('subscription_error'), { data: e })));
    }), T(5000), `subscribe ${name}`);
  }

  /** A raw WebSocket to /app/..., its messages and close recorded. */
  function raw(path) {
    const ws = new WebSocket(`ws://127.0.0.1:${herald.port}${path}`);
    const r = { ws, msgs: [], close: null };
    ws.on('message', (m) => r.msgs.push(JSON.parse(m.toString())));
    ws.on('close', (code, reason) => { r.close = { code, reason: reason.toString() }; });
    ws.on('error', () => {});
    return r;
  }

  before(async () => {
    // the app's auth endpoint, signing with the pusher library as a backend would
    authServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const q = new URLSearchParams(body);
        const socketId = q.get('socket_id');
        let answer;
        if (req.url === '/pusher/user-auth') {
          answer = signer.authenticateUser(socketId, { id: `u-${socketId.split('.')[1]}`, name: 'Signed In' });
        } else {
          const channel = q.get('channel_name');
          if (channel.startsWith('private-forged')) { // signed with another secret
            answer = new PusherServer({ ...APP, secret: 'not-the-secret' }).authorizeChannel(socketId, channel);
          } else if (channel.startsWith('presence-')) {
            const user = presenceUser.get(socketId) || 'nobody';
            answer = signer.authorizeChannel(socketId, channel, { user_id: user, user_info: { name: `N ${user}` } });
          } else {
            answer = signer.authorizeChannel(socketId, channel);
          }
        }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(answer));
      });
    });
    await new Promise((r) => authServer.listen(0, '127.0.0.1', r));
    authUrl = `http://127.0.0.1:${authServer.address().port}`;
    herald = await startHerald(['--api-key', API_KEY,
      '--pusher.app.main.app-id', APP.appId, '--pusher.app.main.key', APP.key,
      '--pusher.app.main.secret', APP.secret, '--pusher.app.main.client-events', 'true',
      '--pusher.app.main.user-authentication', 'true', '--pusher.app.main.max-client-events-per-second', '5',
      '--pusher.app.off.app-id', 'off', '--pusher.app.off.key', 'off-key', '--pusher.app.off.secret', 's',
      '--pusher.app.off.enabled', 'false',
      '--pusher.app.small.app-id', 'small', '--pusher.app.small.key', 'small-key', '--pusher.app.small.secret', 's',
      '--pusher.app.small.max-connections', '1', '--pusher.app.small.activity-timeout', '1s',
      '--pusher.app.tiny.app-id', 'tiny', '--pusher.app.tiny.key', 'tiny-key', '--pusher.app.tiny.secret', 'tiny-secret',
      '--pusher.app.tiny.max-presence-members', '2', '--pusher.app.tiny.max-channel-name-length', '20']);
  });

  after(async () => {
    for (const p of clients) p.disconnect();
    authServer?.close();
    // a clean exit: no leak or UB report under the sanitizers (sessions ended with pending answers included)
    const exit = await herald?.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, herald.tail(60));
    assert.doesNotMatch(herald.stderr(), /Sanitizer|runtime error/, herald.tail(60));
  });

  const wrap = (fn) => async () => { try { await fn(); } catch (e) { throw annotate(e, herald); } };

  test('a public channel gets /api/publish events: {event,data} objects as that event, other data as "message"', wrap(async () => {
    const p = await connect();
    const name = uniq('news-');
    const ch = await subscribe(p, name);
    const got = [];
    ch.bind('created', (d) => got.push(['created', d]));
    ch.bind('message', (d) => got.push(['message', d]));
    await publish(name, { event: 'created', data: { id: 7 } });
    await publish(name, 42);
    await publish(name, { event: 'created', data: 'a string stays a string' });
    await until(() => got.length === 3, `3 events (got ${JSON.stringify(got)})`);
    assert.deepEqual(got, [['created', { id: 7 }], ['message', 42], ['created', 'a string stays a string']]);
  }));

  test('private channels: the auth endpoint signs, a forged signature gets pusher:subscription_error 401', wrap(async () => {
    const p = await connect();
    const name = uniq('private-room-');
    const ch = await subscribe(p, name);
    const got = [];
    ch.bind('hi', (d) => got.push(d));
    await publish(name, { event: 'hi', data: { n: 1 } });
    await until(() => got.length === 1, 'the private event');
    const err = await subscribe(p, uniq('private-forged-')).then(() => null, (e) => e.data);
    assert.ok(err, 'a forged signature is refused');
    assert.equal(err.status, 401);
    assert.equal(err.type, 'AuthError');
  }));

  test('presence: two users see each other join and leave; one member per user_id', wrap(async () => {
    const name = uniq('presence-room-');
    const a = await connect();
    presenceUser.set(a.connection.socket_id, 'alice');
    const chA = await subscribe(a, name);
    assert.equal(chA.members.count, 1);
    assert.equal(chA.members.me.id, 'alice');
    const added = [];
    const removed = [];
    chA.bind('pusher:member_added', (m) => added.push(m));
    chA.bind('pusher:member_removed', (m) => removed.push(m));
    const b1 = await connect();
    presenceUser.set(b1.connection.socket_id, 'bob');
    const chB = await subscribe(b1, name);
    assert.equal(chB.members.count, 2);
    assert.deepEqual(chB.members.get('alice').info, { name: 'N alice' });
    await until(() => added.length === 1, 'member_added bob');
    assert.equal(added[0].id, 'bob');
    assert.deepEqual(added[0].info, { name: 'N bob' });
    // bob's second connection: no second member_added; its end: no member_removed
    const b2 = await connect();
    presenceUser.set(b2.connection.socket_id, 'bob');
    const chB2 = await subscribe(b2, name);
    assert.equal(chB2.members.count, 2);
    b2.disconnect();
    await sleep(T(300));
    assert.equal(added.length, 1);
    assert.equal(removed.length, 0);
    assert.equal(chA.members.count, 2);
    b1.disconnect(); // bob's last connection
    await until(() => removed.length === 1, 'member_removed bob');
    assert.equal(removed[0].id, 'bob');
    assert.equal(chA.members.count, 1);
  }));

  test('client events reach the other subscribers, never the sender; refused on public channels; 4301 past the rate', wrap(async () => {
    const name = uniq('private-chat-');
    const a = await connect();
    const b = await connect();
    const chA = await subscribe(a, name);
    const chB = await subscribe(b, name);
    const atA = [];
    const atB = [];
    chA.bind('client-typing', (d) => atA.push(d));
    chB.bind('client-typing', (d) => atB.push(d));
    assert.ok(chA.trigger('client-typing', { who: 'a' }));
    await until(() => atB.length === 1, 'client event at b');
    assert.deepEqual(atB[0], { who: 'a' });
    await sleep(T(200));
    assert.equal(atA.length, 0, 'not echoed to the sender');
    // the rate: 5 per second for this app
    const errors = [];
    a.connection.bind('error', (e) => errors.push(e));
    await sleep(1100);
    for (let i = 0; i < 8; i++) chA.trigger('client-typing', { i });
    await until(() => errors.some((e) => e.data?.code === 4301), `pusher:error 4301 (got ${JSON.stringify(errors)})`);
    await until(() => atB.length === 6, `5 more at b (got ${atB.length - 1})`);
    await sleep(T(200));
    assert.equal(atB.length, 6, 'the events past the rate are dropped');
    assert.equal(a.connection.state, 'connected', 'the connection stays');
    // public channels take no client events
    const pub = uniq('public-');
    const chP = await subscribe(a, pub);
    errors.length = 0;
    chP.trigger('client-x', {});
    await until(() => errors.length === 1, 'an error for a client event on a public channel');
  }));

  test('private-encrypted: the server library encrypts, Herald relays the ciphertext, pusher-js decrypts', wrap(async () => {
    const name = uniq('private-encrypted-vault-');
    const p = await connect();
    const ch = await subscribe(p, name);
    const got = [];
    ch.bind('secret', (d) => got.push(d));
    // the library's own trigger, with its HTTP post sent to Herald's /api/publish instead
    const lib = new PusherServer({ ...APP, host: '127.0.0.1', encryptionMasterKeyBase64: MASTER_KEY });
    let sent;
    lib.post = async ({ body }) => {
      sent = body;
      return publish(body.channels[0], { event: body.name, data: body.data });
    };
    await lib.trigger(name, 'secret', { pin: 1234 });
    const payload = JSON.parse(sent.data);
    assert.ok(payload.nonce && payload.ciphertext, 'the library sent a ciphertext');
    assert.ok(!sent.data.includes('1234'), 'no plaintext leaves the backend');
    await until(() => got.length === 1, 'the decrypted event');
    assert.deepEqual(got[0], { pin: 1234 });
    // what Herald keeps is the ciphertext as given
    const h = await api('history', { channel: herChan(name), limit: 1 });
    assert.equal(h.publications[0].data.data, sent.data);
  }));

  test('cache channels: pusher:cache_miss when empty, else the last event on subscribe', wrap(async () => {
    const name = uniq('cache-prices-');
    const a = await connect();
    const chA = a.subscribe(name);
    const misses = [];
    chA.bind('pusher:cache_miss', () => misses.push(1));
    await until(() => misses.length === 1, 'pusher:cache_miss');
    await publish(name, { event: 'price', data: { v: 1 } });
    await publish(name, { event: 'price', data: { v: 2 } });
    const b = await connect();
    const chB = b.subscribe(name);
    const got = [];
    chB.bind('price', (d) => got.push(d));
    await until(() => got.length === 1, 'the cached event');
    await sleep(T(200));
    assert.deepEqual(got, [{ v: 2 }]);
  }));

  test('signin, then a server-to-user event published to the user channel', wrap(async () => {
    const p = await connect();
    const id = `u-${p.connection.socket_id.split('.')[1]}`;
    const got = [];
    p.user.bind('notice', (d) => got.push(d));
    p.signin();
    await withTimeout(p.user.signinDonePromise, T(5000), 'signin');
    assert.equal(p.user.user_data.id, id);
    // pusher-js subscribes #server-to-user-ID after signin_success: published before the server
    // took that subscription, the event would reach nobody
    await until(() => p.user.serverToUserChannel?.subscribed, 'the #server-to-user- subscription');
    await api('publish', { channel: `$pusher-${APP.appId}:#${id}`, data: { event: 'notice', data: { x: 1 } } });
    await until(() => got.length === 1, 'the server-to-user event');
    assert.deepEqual(got[0], { x: 1 });
  }));

  test('max_presence_members (distinct user ids) and max_channel_name_length: pusher:subscription_error', wrap(async () => {
    const tiny = new PusherServer({ appId: 'tiny', key: 'tiny-key', secret: 'tiny-secret', host: '127.0.0.1' });
    const as = (user) => connect({ channelAuthorization: { customHandler: ({ socketId, channelName }, cb) =>
      cb(null, tiny.authorizeChannel(socketId, channelName, { user_id: user })) } }, 'tiny-key');
    const name = `presence-t${seq++}`;
    await subscribe(await as('u1'), name);
    await subscribe(await as('u2'), name);
    await subscribe(await as('u2'), name); // a second connection of a member: no new member
    const err = await subscribe(await as('u3'), name).then(() => null, (e) => e.data);
    assert.equal(err?.status, 403, JSON.stringify(err));
    assert.equal(err.type, 'LimitReached');
    const p = await as('u1');
    await subscribe(p, 'a'.repeat(20));
    const long = await subscribe(p, 'a'.repeat(21)).then(() => null, (e) => e.data);
    assert.equal(long?.status, 400, JSON.stringify(long));
    const bad = await subscribe(p, 'semi;colon:no').then(() => null, (e) => e.data);
    assert.equal(bad?.status, 400, 'a name outside Pusher\'s charset');
    const ok = await subscribe(p, 'a;b..c.');
    assert.ok(ok, 'Pusher names Herald\'s grammar refuses are escaped, not refused');
  }));

  test('recovery extension: positions only for subscriptions that ask, herald_since replays what was missed', wrap(async () => {
    const name = uniq('feed-');
    const sub = (r, extra) => r.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: name, ...extra } }));
    const events = (r) => r.msgs.filter((m) => m.event === 'tick');
    const open = async () => {
      const r = raw('/app/app-key?protocol=7');
      await until(() => r.msgs.length === 1, 'established');
      return r;
    };
    const a = await open();
    const plain = await open();
    sub(a, { herald: true });
    sub(plain, {});
    await until(() => a.msgs.some((m) => m.event === 'herald:subscribed'), 'herald:subscribed');
    const first = a.msgs.find((m) => m.event === 'herald:subscribed').data;
    assert.equal(first.offset, 0);
    assert.equal(first.recovered, undefined, 'no since: nothing to recover');
    await until(() => plain.msgs.some((m) => m.event === 'pusher_internal:subscription_succeeded'), 'plain subscribed');
    for (let i = 1; i <= 3; i++) await publish(name, { event: 'tick', data: { i } });
    await until(() => events(a).length === 3 && events(plain).length === 3, 'three ticks each');
    assert.deepEqual(events(a).map((m) => m.herald.offset), [1, 2, 3]);
    const epoch = events(a)[0].herald.epoch;
    assert.equal(epoch, first.epoch);
    assert.ok(events(plain).every((m) => !('herald' in m)), 'an unmodified client never sees positions');
    a.ws.close();
    plain.ws.close();
    // missed while away: 4 and 5
    await publish(name, { event: 'tick', data: { i: 4 } });
    await publish(name, { event: 'tick', data: { i: 5 } });
    const back = await open();
    sub(back, { herald_since: { offset: 3, epoch } });
    await until(() => back.msgs.some((m) => m.event === 'herald:subscribed'), 'recovered');
    const kinds = back.msgs.slice(1).map((m) => m.event);
    assert.deepEqual(kinds, ['pusher_internal:subscription_succeeded', 'tick', 'tick', 'herald:subscribed']);
    assert.deepEqual(events(back).map((m) => JSON.parse(m.data).i), [4, 5]);
    assert.deepEqual(back.msgs.at(-1).data, { offset: 5, epoch, recovered: true });
    await publish(name, { event: 'tick', data: { i: 6 } });
    await until(() => events(back).length === 3, 'live after the replay');
    assert.equal(events(back)[2].herald.offset, 6);
    back.ws.close();
    // another epoch: no replay, the position to resync from
    const lost = await open();
    sub(lost, { herald_since: { offset: 1, epoch: 'not-the-epoch' } });
    await until(() => lost.msgs.some((m) => m.event === 'herald:subscribed'), 'answered');
    assert.equal(events(lost).length, 0, 'never a partial replay');
    assert.deepEqual(lost.msgs.at(-1).data, { offset: 6, epoch, recovered: false });
    const bad = await open();
    sub(bad, { herald_since: { offset: 'x' } });
    await until(() => bad.msgs.length === 2, 'refused');
    assert.equal(bad.msgs[1].event, 'pusher:subscription_error');
    assert.equal(bad.msgs[1].data.status, 400);
    lost.ws.close();
    bad.ws.close();
  }));

  test('refusals: pusher:error then a close with the same code', wrap(async () => {
    const cases = [
      ['/app/no-such-key?protocol=7', 4001],
      ['/app/off-key?protocol=7', 4003],
      ['/app/app-key?protocol=6', 4007],
      ['/app/app-key?client=js', 4008],
    ];
    for (const [path, code] of cases) {
      const r = raw(path);
      await until(() => r.close, `close for ${path}`);
      assert.equal(r.msgs[0]?.event, 'pusher:error', path);
      assert.equal(r.msgs[0].data.code, code, path);
      assert.equal(r.close.code, code, path);
    }
    // pusher:signin: refused with 4009 when the app has no user_authentication, or with a bad signature
    for (const [path, auth] of [['/app/tiny-key?protocol=7', null], ['/app/app-key?protocol=7', 'forged']]) {
      const r = raw(path);
      await until(() => r.msgs.length === 1, `${path}: established`);
      const socketId = JSON.parse(r.msgs[0].data).socket_id;
      const userData = JSON.stringify({ id: 'mallory' });
      const good = signer.authenticateUser(socketId, { id: 'mallory' });
      r.ws.send(JSON.stringify({ event: 'pusher:signin',
        data: { user_data: userData, auth: auth ? `${APP.key}:${'0'.repeat(64)}` : good.auth } }));
      await until(() => r.close, `${path}: signin refused`);
      assert.equal(r.msgs[1]?.data?.code, 4009, JSON.stringify(r.msgs));
      assert.equal(r.close.code, 4009);
    }
    // max_connections 1 on app small: the second gets 4100, the first is untouched
    const first = raw('/app/small-key?protocol=7');
    await until(() => first.msgs.length === 1, 'small: established');
    const second = raw('/app/small-key?protocol=7');
    await until(() => second.close, 'small: the second closed');
    assert.equal(second.close.code, 4100);
    assert.equal(first.close, null);
    first.ws.close();
    await until(() => first.close, 'first closed');
    await sleep(T(100));
    const third = raw('/app/small-key?protocol=7'); // room again
    await until(() => third.msgs.length === 1, 'small: established again');
    assert.equal(third.msgs[0].event, 'pusher:connection_established');
    third.ws.close();
    // pusher-js itself: 4001 is final (disconnected, never connected, no retry)
    const p = new PusherJS('no-such-key', { wsHost: '127.0.0.1', wsPort: herald.port, forceTLS: false,
      enabledTransports: ['ws'], cluster: 'unused', disableStats: true });
    clients.push(p);
    const errs = [];
    const states = [];
    p.connection.bind('error', (e) => errs.push(e));
    p.connection.bind('state_change', (s) => states.push(s.current));
    await until(() => errs.some((e) => e.error?.data?.code === 4001), `pusher-js sees 4001 (${JSON.stringify(errs)})`);
    await until(() => states.includes('disconnected'), 'pusher-js gives up');
    await sleep(T(500));
    assert.ok(!states.includes('connected') && states.filter((s) => s === 'connecting').length <= 1, states.join());
  }));

  test('no [pusher.app.NAME]: no /app/ route (404)', wrap(async () => {
    const plain = await startHerald([]);
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${plain.port}/app/app-key?protocol=7`);
      const status = await withTimeout(new Promise((resolve) => {
        ws.on('unexpected-response', (req, res) => resolve(res.statusCode));
        ws.on('open', () => resolve(101));
        ws.on('error', () => {});
      }), T(5000), 'the answer');
      assert.equal(status, 404);
    } finally {
      await plain.stop();
    }
  }));

  test('ping/pong both ways; no pong within the wait closes with 4201', wrap(async () => {
    const r = raw('/app/app-key?protocol=7&client=js&version=8.4.0&flash=false');
    await until(() => r.msgs.length === 1, 'established');
    const est = JSON.parse(r.msgs[0].data);
    assert.match(est.socket_id, /^\d+\.\d+$/);
    assert.equal(est.activity_timeout, 120);
    r.ws.send(JSON.stringify({ event: 'pusher:ping', data: {} }));
    await until(() => r.msgs.length === 2, 'pong');
    assert.equal(r.msgs[1].event, 'pusher:pong');
    r.ws.close();
    // app small: activity_timeout 1 s; the server pings, nobody answers
    const s = raw('/app/small-key?protocol=7');
    await until(() => s.msgs.length === 1, 'established');
    assert.equal(JSON.parse(s.msgs[0].data).activity_timeout, 1);
    await until(() => s.msgs.some((m) => m.event === 'pusher:ping'), 'the server pings', T(3000));
    await until(() => s.close, 'closed for want of a pong', T(4000));
    assert.equal(s.close.code, 4201);
    // one that answers stays
    const k = raw('/app/small-key?protocol=7');
    k.ws.on('message', (m) => {
      if (JSON.parse(m.toString()).event === 'pusher:ping') k.ws.send(JSON.stringify({ event: 'pusher:pong', data: {} }));
    });
    await sleep(3500);
    assert.equal(k.close, null, 'answering pings keeps the connection');
    k.ws.close();
  }));
});
