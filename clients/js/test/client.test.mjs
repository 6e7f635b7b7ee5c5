// client.test.mjs - the Herald client's state machine against FakeServer (an
// in-memory server behind a fake WebSocket class): connect, reconnect with
// backoff, disconnect codes, resubscribe with recovery, offline queue and
// idempotency keys, tokens, heartbeat. No network.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, HeraldError, QueueFullError, DisconnectError, ErrorCodes, matchPattern, isPattern, resolveUrls } from '../src/index.js';
import { FakeServer, sleep, until } from './fake.mjs';

function client(server, opts = {}) {
  const c = new Herald('http://fake.invalid', {
    WebSocket: server.WebSocket, transports: ['websocket'],
    minReconnectDelay: 5, maxReconnectDelay: 40, timeout: 500, ...opts,
  });
  const log = [];
  for (const ev of ['connecting', 'connected', 'disconnected', 'error']) c.on(ev, (x) => log.push([ev, x]));
  c.log = log;
  return c;
}

test('URLs: base, ws URL, trailing /ws and https', () => {
  assert.deepEqual(resolveUrls('http://h:1'), { http: 'http://h:1', ws: 'ws://h:1/ws' });
  assert.deepEqual(resolveUrls('ws://h:1/ws'), { http: 'http://h:1', ws: 'ws://h:1/ws' });
  assert.deepEqual(resolveUrls('https://h/herald/'), { http: 'https://h/herald', ws: 'wss://h/herald/ws' });
});

test('patterns: * is one segment, a final > one or more', () => {
  assert.ok(isPattern('prices.>') && isPattern('prices.*.usd') && !isPattern('prices.btc'));
  assert.ok(matchPattern('prices.*.usd', 'prices.btc.usd'));
  assert.ok(!matchPattern('prices.*.usd', 'prices.eu.btc.usd'));
  assert.ok(matchPattern('prices.>', 'prices.btc') && matchPattern('prices.>', 'prices.eu.btc.usd'));
  assert.ok(!matchPattern('prices.>', 'prices'));
  assert.ok(!matchPattern('prices.*', 'other.btc'));
});

test('no transport at all is a clear error', () => {
  assert.throws(() => new Herald('http://x', { WebSocket: null, fetch: null, transports: ['websocket'] }),
    (e) => e instanceof HeraldError && e.code === ErrorCodes.NO_TRANSPORT);
});

test('connect: connecting -> connected, state events, ready()', async () => {
  const s = new FakeServer();
  const c = client(s);
  const states = [];
  c.on('state', ({ state }) => states.push(state));
  c.connect();
  await c.ready(1000);
  assert.deepEqual(states, ['connecting', 'connected']);
  assert.equal(c.clientId, 'c1');
  assert.equal(c.transportName, 'websocket');
  assert.deepEqual(s.commands[0].connect, { name: 'herald-js', version: '0.1.0' });
  c.disconnect();
  assert.equal(c.state, 'disconnected');
  assert.deepEqual(c.log.at(-1), ['disconnected', { code: 1000, reason: 'client disconnect', reconnect: false }]);
});

test('drop with a reconnect code: backoff, reconnect, resubscribe with recovery, nothing lost or twice', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('news');
  const got = [];
  sub.on('publication', (p) => got.push(p.data));
  const recovered = [];
  sub.on('recovered', (r) => recovered.push(r));
  await sub.ready(1000);
  s.publish('news', 1);
  s.publish('news', 2);
  await until(() => got.length === 2);
  s.open[0].serverClose(3000, 'disconnected by the server');
  await until(() => c.state === 'connecting');
  s.publish('news', 3); // while away
  s.publish('news', 4);
  await until(() => c.state === 'connected' && sub.state === 'subscribed', 2000, 'reconnect');
  s.publish('news', 5);
  await until(() => got.length === 5);
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
  assert.equal(recovered.length, 1);
  assert.equal(recovered[0].publications, 2);
  const resub = s.commands.filter((x) => x.subscribe).at(-1).subscribe;
  assert.deepEqual(resub, { channel: 'news', recover: true, epoch: 'e1', offset: 2 });
  const d = c.log.find(([ev]) => ev === 'disconnected');
  assert.deepEqual(d[1], { code: 3000, reason: 'disconnected by the server', reconnect: true });
  const waits = c.log.filter(([ev, x]) => ev === 'connecting' && x.delay !== undefined);
  assert.ok(waits.length >= 1 && waits.every(([, x]) => x.delay >= 0 && x.delay <= 40), JSON.stringify(waits));
  c.disconnect();
});

test('a pub pushed twice (exact + pattern delivery, or a replay overlap) is delivered once', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('a.b');
  const pat = c.subscribe('a.>');
  const got = [], gotPat = [];
  sub.on('publication', (p) => got.push(p.offset));
  pat.on('publication', (p) => gotPat.push(`${p.channel}@${p.offset}`));
  await sub.ready(); await pat.ready();
  const sock = s.open[0];
  sock.push({ pub: { channel: 'a.b', offset: 1, data: 1 } });
  sock.push({ pub: { channel: 'a.b', offset: 1, data: 1 } });
  sock.push({ pub: { channel: 'a.c', offset: 1, data: 1 } });
  sock.push({ pub: { channel: 'a.c', offset: 1, data: 1 } });
  sock.push({ pub: { channel: 'a.b', offset: 2, data: 2 } });
  await until(() => got.length === 2 && gotPat.length === 3);
  await sleep(10);
  assert.deepEqual(got, [1, 2]);
  assert.deepEqual(gotPat, ['a.b@1', 'a.c@1', 'a.b@2']);
  c.disconnect();
});

test('recovery impossible (epoch changed): recovery_failed, then live from the new position', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('news');
  const failed = [];
  sub.on('recovery_failed', (x) => failed.push(x));
  await sub.ready();
  s.publish('news', 1);
  await until(() => sub.offset === 1);
  s.epoch = 'e2';
  s.open[0].serverClose(3001, 'restart');
  await until(() => failed.length === 1, 2000, 'recovery_failed');
  assert.equal(failed[0].previousEpoch, 'e1');
  assert.equal(failed[0].epoch, 'e2');
  c.disconnect();
});

test('a "do not reconnect" code (3500) stops the client with a DisconnectError', async () => {
  const s = new FakeServer();
  s.badToken = 'forged';
  const c = client(s, { token: 'forged' });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  c.connect();
  await until(() => c.state === 'disconnected' && c.log.some(([ev]) => ev === 'disconnected'), 2000, 'stop');
  await sleep(100);
  assert.equal(s.sockets.length, 1, 'no second attempt');
  const d = c.log.find(([ev]) => ev === 'disconnected')[1];
  assert.equal(d.code, 3500);
  assert.equal(d.reconnect, false);
  assert.ok(errors.some((e) => e.code === 101), 'the connect error 101 is reported');
  assert.ok(errors.some((e) => e instanceof DisconnectError && e.code === 3500 && e.temporary === false));
  await assert.rejects(c.ready(50), (e) => e instanceof HeraldError);
});

test('offline: publishes queue (bounded), then go out once each with idempotency keys', async () => {
  const s = new FakeServer();
  s.refuse = true;
  const c = client(s, { maxQueued: 3 });
  c.connect();
  const ps = [c.publish('q', 'a'), c.publish('q', 'b'), c.publish('q', 'c')];
  await assert.rejects(c.publish('q', 'd'), (e) => e instanceof QueueFullError && e.code === ErrorCodes.QUEUE_FULL && e.temporary);
  assert.equal(c.queued, 3);
  await sleep(50);
  s.refuse = false;
  const res = await Promise.all(ps);
  assert.deepEqual(res.map((r) => r.offset), [1, 2, 3]);
  assert.deepEqual(s.chan('q').pubs.map((p) => p.data), ['a', 'b', 'c']);
  const keys = s.commands.filter((x) => x.publish).map((x) => x.publish.idempotency_key);
  assert.equal(new Set(keys).size, 3);
  assert.equal(c.queued, 0);
  c.disconnect();
});

test('ack lost with the connection: the publish is resent with the same key and stored once', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  await c.ready();
  s.dropAfterPublish = true;
  const p = c.publish('q', 'only-once');
  await until(() => s.commands.some((x) => x.publish));
  s.dropAfterPublish = false;
  const r = await p;
  assert.equal(r.offset, 1);
  const sent = s.commands.filter((x) => x.publish);
  assert.equal(sent.length, 2, 'sent twice');
  assert.equal(sent[0].publish.idempotency_key, sent[1].publish.idempotency_key);
  assert.equal(s.chan('q').pubs.length, 1, 'stored once');
  c.disconnect();
});

test('disconnect() rejects queued publishes and pending commands', async () => {
  const s = new FakeServer();
  s.refuse = true;
  const c = client(s);
  c.connect();
  const p = c.publish('q', 1);
  c.disconnect();
  await assert.rejects(p, (e) => e.code === ErrorCodes.CLIENT_CLOSED);
});

test('3005 at connect: getToken for a new token, reconnect, connected', async () => {
  const s = new FakeServer();
  s.validToken = 'fresh';
  const asked = [];
  const c = client(s, { token: 'stale', getToken: async (ctx) => { asked.push(ctx.reason); return 'fresh'; } });
  c.connect();
  await c.ready(2000);
  assert.deepEqual(asked, ['connect']);
  assert.deepEqual(s.commands.filter((x) => x.connect).map((x) => x.connect.token), ['stale', 'fresh']);
  c.disconnect();
});

test('refresh push: getToken, refresh command, connection stays', async () => {
  const s = new FakeServer();
  let n = 0;
  const c = client(s, { getToken: async () => `t${++n}`, refreshAhead: 0 });
  const refreshed = [];
  c.on('refreshed', (x) => refreshed.push(x));
  c.connect();
  await c.ready();
  s.open[0].push({ refresh: { reason: 'token expired', in: 10 } });
  await until(() => refreshed.length === 1);
  assert.deepEqual(s.commands.filter((x) => x.refresh).map((x) => x.refresh.token), ['t2']);
  assert.equal(s.sockets.length, 1);
  c.disconnect();
});

test('token refreshed ahead of expiry (ttl from connect)', async () => {
  const s = new FakeServer();
  s.ttl = 0.1; // seconds
  let n = 0;
  const c = client(s, { getToken: async () => `t${++n}`, refreshAhead: 50 });
  c.connect();
  await c.ready();
  await until(() => s.commands.some((x) => x.refresh), 1000, 'refresh');
  c.disconnect();
});

test('heartbeat: a connection that stops answering is dropped and replaced', async () => {
  const s = new FakeServer();
  const c = client(s, { pingInterval: 40, pongTimeout: 60 });
  c.connect();
  await c.ready();
  s.silent = true;
  await until(() => c.log.some(([ev]) => ev === 'disconnected'), 2000, 'dead connection detected');
  const d = c.log.find(([ev]) => ev === 'disconnected')[1];
  assert.match(d.reason, /no heartbeat/);
  assert.equal(d.reconnect, true);
  assert.ok(s.commands.some((x) => x.ping), 'a ping was sent first');
  s.silent = false;
  await until(() => c.state === 'connected' && s.sockets.length >= 2, 2000, 'reconnected');
  c.disconnect();
});

test('history, presence and presence stats resolve with the server result; errors are ReplyErrors', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('room');
  await sub.ready();
  s.publish('room', { a: 1 });
  const h = await sub.history({ limit: 10 });
  assert.deepEqual(h.publications, [{ offset: 1, data: { a: 1 } }]);
  const pr = await sub.presence();
  assert.equal(Object.keys(pr.clients).length, 1);
  assert.deepEqual(await sub.presenceStats(), { num_clients: 1, num_users: 0 });
  await assert.rejects(c._callConnected('nosuch', {}), (e) => e.name === 'ReplyError' && e.code === 104 && e.temporary === false);
  c.disconnect();
});

test('history passes before and sinceTime through; historyPages follows next forward and backward', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('log');
  await sub.ready();
  for (let i = 1; i <= 25; i++) s.publish('log', { i });
  await c.history('log', { limit: 5, reverse: true, before: { offset: 20, epoch: 'e1' }, sinceTime: 1700000000000 });
  assert.deepEqual(s.commands.at(-1).history, { channel: 'log', limit: 5, reverse: true, before: { offset: 20, epoch: 'e1' }, since_time: 1700000000000 });
  const walk = async (opts) => {
    const seen = [];
    for await (const page of sub.historyPages(opts)) seen.push(...page.publications.map((p) => p.offset));
    return seen;
  };
  assert.deepEqual(await walk({ limit: 10 }), Array.from({ length: 25 }, (_, i) => i + 1));
  assert.deepEqual(await walk({ limit: 10, reverse: true }), Array.from({ length: 25 }, (_, i) => 25 - i));
  assert.deepEqual(s.commands.at(-1).history.before, { offset: 6, epoch: 'e1' });
  c.disconnect();
});

test('rpc resolves with the backend data; a backend error is a ReplyError with its code', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const answer = c.rpc('chat.history', { limit: 2 }); // made while connecting: waits for the connection
  assert.deepEqual(await answer, { method: 'chat.history', echo: { limit: 2 } });
  assert.deepEqual(s.commands.at(-1).rpc, { method: 'chat.history', data: { limit: 2 } });
  await assert.rejects(c.rpc('fail'), (e) => e.name === 'ReplyError' && e.code === 1404);
  c.disconnect();
});

test('subscribe data is sent with the subscribe, and again on a resubscribe', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('room', { data: { invite: 'x7' } });
  const plain = c.subscribe('other');
  await sub.ready(1000);
  await plain.ready(1000);
  s.open[0].serverClose(3000, 'disconnected by the server');
  await until(() => c.state === 'connecting');
  await until(() => c.state === 'connected' && sub.state === 'subscribed', 2000, 'reconnect');
  const sent = s.commands.filter((x) => x.subscribe && x.subscribe.channel === 'room').map((x) => x.subscribe.data);
  assert.deepEqual(sent, [{ invite: 'x7' }, { invite: 'x7' }]);
  assert.ok(s.commands.filter((x) => x.subscribe && x.subscribe.channel === 'other').every((x) => !('data' in x.subscribe)));
  c.disconnect();
});

test('subscribe twice is refused; unsubscribe sends the command and emits unsubscribed', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('x');
  assert.throws(() => c.subscribe('x'), (e) => e.code === ErrorCodes.ALREADY_SUBSCRIBED);
  await sub.ready();
  const ev = [];
  sub.on('unsubscribed', (x) => ev.push(x));
  sub.unsubscribe();
  await until(() => s.commands.some((x) => x.unsubscribe));
  assert.equal(ev.length, 1);
  assert.equal(c.getSubscription('x'), null);
  c.disconnect();
});

test('a refused subscribe rejects ready() with the server error and ends the subscription', async () => {
  const s = new FakeServer();
  const orig = s.handle.bind(s);
  s.handle = (sock, cmd) => {
    if (cmd.subscribe && cmd.subscribe.channel === 'secret') {
      sock.push({ id: cmd.id, error: { code: 103, message: 'permission denied', temporary: false, detail: 'no' } });
      return;
    }
    orig(sock, cmd);
  };
  const c = client(s);
  c.connect();
  const sub = c.subscribe('secret');
  const errors = [];
  sub.on('error', (e) => errors.push(e));
  await assert.rejects(sub.ready(1000), (e) => e.name === 'ReplyError' && e.code === 103 && e.detail === 'no');
  assert.equal(sub.state, 'unsubscribed');
  assert.equal(c.getSubscription('secret'), null);
  assert.equal(errors.length, 1);
  c.disconnect();
});

test('server unsubscribe push ends the subscription with its code', async () => {
  const s = new FakeServer();
  const c = client(s);
  c.connect();
  const sub = c.subscribe('x');
  await sub.ready();
  const ev = [];
  sub.on('unsubscribed', (x) => ev.push(x));
  s.open[0].push({ unsubscribe: { channel: 'x', code: 2000, reason: 'unsubscribed by the server' } });
  await until(() => ev.length === 1);
  assert.deepEqual(ev[0], { channel: 'x', code: 2000, reason: 'unsubscribed by the server' });
  c.disconnect();
});

test('no WebSocket implementation: connect() emits a warning and uses the HTTP transports', async () => {
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket; // Node 22 has one built in; Node 18 and 20 do not
  try {
    const fetches = [];
    const c = new Herald('http://fake.invalid', { fetch: async (url) => { fetches.push(url); throw new TypeError('fetch failed'); },
      minReconnectDelay: 5, maxReconnectDelay: 20, timeout: 200 });
    assert.deepEqual(c.transports, ['http_stream', 'long_polling']);
    const warnings = [];
    c.on('warning', (w) => warnings.push(w));
    c.connect();
    after(() => c.disconnect());
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].code, 'no_websocket');
    assert.match(warnings[0].message, /WebSocket.*ws package/);
    await until(() => fetches.length >= 2);
    c.disconnect();
  } finally {
    if (saved !== undefined) globalThis.WebSocket = saved;
  }
});

test('a refused WebSocket is retried after the backoff, not given up for the fallbacks; ready() says refused, not timeout', async () => {
  const s = new FakeServer();
  s.refuse = true;
  s.refuseCode = 'ECONNREFUSED';
  const fetches = [];
  const c = client(s, { transports: ['websocket', 'long_polling'], fetch: async (url) => { fetches.push(url); throw new TypeError('fetch failed'); } });
  after(() => c.disconnect());
  const failed = [];
  c.on('transport', (x) => { if (x.failed) failed.push(x.transport); });
  c.connect();
  const err = await c.ready(300).then(() => null, (e) => e);
  assert.ok(err, 'ready() rejects');
  assert.equal(err.code, ErrorCodes.NO_TRANSPORT, err.message);
  assert.match(err.message, /ECONNREFUSED/);
  assert.equal(err.temporary, true);
  assert.equal(err.name, 'HeraldError');
  assert.deepEqual(fetches, [], 'no fallback while nothing listens');
  assert.ok(failed.length >= 2 && failed.every((t) => t === 'websocket'), JSON.stringify(failed));
  s.refuse = false;
  await c.ready(1000);
  assert.equal(c.transportName, 'websocket');
  c.disconnect();
});

test('a publish queued offline reaches our own subscription although its recovery failed (server restart)', async () => {
  const s = new FakeServer();
  const c = client(s);
  after(() => c.disconnect());
  c.connect();
  const sub = c.subscribe('room');
  const got = [];
  sub.on('publication', (p) => got.push(p.data));
  const failed = [];
  sub.on('recovery_failed', (x) => failed.push(x));
  await sub.ready(1000);
  s.publish('room', 'a');
  s.publish('room', 'b');
  await until(() => got.length === 2);
  s.refuse = true;
  s.restart();
  await until(() => c.state === 'connecting');
  const acked = c.publish('room', 'mine, sent offline');
  assert.equal(c.queued, 1);
  s.refuse = false;
  const r = await acked;
  assert.equal(r.epoch, 'e2');
  await until(() => got.length === 3, 1000, 'own publication delivered');
  assert.deepEqual(got, ['a', 'b', 'mine, sent offline']);
  assert.equal(failed.length, 1);
  // The subscribe went out before the publish.
  const order = s.commands.filter((x) => x.subscribe || x.publish).slice(-2).map((x) => (x.subscribe ? 'subscribe' : 'publish'));
  assert.deepEqual(order, ['subscribe', 'publish']);
  c.disconnect();
});
