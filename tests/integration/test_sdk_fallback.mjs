// test_sdk_fallback.mjs - the JavaScript SDK falls back from WebSocket to HTTP
// streaming or long polling when WebSocket is refused, and goes back to
// WebSocket once it works again; a refused connection (nothing listening, a
// server restarting) is not taken for a blocked WebSocket. WebSocket is refused by a small HTTP proxy
// in this file's process (lib/sdk.mjs httpProxy) that answers upgrades 403, as
// a corporate proxy might; the proxy and the REAL herald are on 127.0.0.1.
//
// Run: node --test tests/integration/test_sdk_fallback.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, annotate, SLOW, sleep } from './lib/herald.mjs';
import net from 'node:net';
import { loadSdk, apiPublish, collect, until, httpProxy, tcpProxy } from './lib/sdk.mjs';

const T = (ms) => ms * SLOW;
const KEY = 'sdk-test-key';
// the API key, and client publish for every channel (opt-in, docs/auth.md): the tests publish from the SDK
const SERVER_ARGS = ['--api-key', KEY, '--channels.publish', 'anyone'];
const { Herald, ErrorCodes } = await loadSdk();
const clients = [];
after(() => { for (const c of clients) c.disconnect(); });

async function withProxiedServer(fn, makeProxy = httpProxy) {
  const h = await startHerald([...SERVER_ARGS, '--poll.timeout', '2s']);
  const proxy = await makeProxy(h.port);
  try {
    return await fn(h, proxy);
  } catch (e) {
    throw annotate(e, h);
  } finally {
    for (const c of clients.splice(0)) c.disconnect();
    await proxy.close();
    await h.stop();
  }
}

/** The same checks over whatever transport the client ended up on. */
async function exercise(h, c, channel) {
  const sub = c.subscribe(channel);
  const got = collect(sub, 'publication');
  await sub.ready(T(5000));
  const r = await c.publish(channel, { from: 'sdk' });
  assert.equal(r.offset, 1);
  await apiPublish(h, KEY, channel, { from: 'api' });
  await until(() => got.length === 2, T(8000), 'own and API publications');
  assert.deepEqual(got.map((p) => p.data.from), ['sdk', 'api']);
  const pres = await c.presence(channel);
  assert.ok(pres.clients[c.clientId], 'presence over the fallback transport');
  const hist = await c.history(channel);
  assert.equal(hist.publications.length, 2);
}

for (const [name, transports] of [
  ['http_stream', ['websocket', 'http_stream', 'long_polling']],
  ['long_polling', ['websocket', 'long_polling']],
]) {
  test(`WebSocket refused by a proxy: falls back to ${name}`, { timeout: T(30000) }, async () => {
    await withProxiedServer(async (h, proxy) => {
      const c = new Herald(proxy.url, { WebSocket, transports, upgradeInterval: 0, timeout: T(3000) });
      clients.push(c);
      const tr = collect(c, 'transport');
      c.connect();
      await c.ready(T(8000));
      assert.equal(c.transportName, name);
      assert.ok(proxy.upgradesRefused >= 1, 'the WebSocket was tried first');
      assert.deepEqual(tr[0], { transport: 'websocket', failed: true, reason: tr[0].reason });
      await exercise(h, c, `fb-${name}`);
      // Long polls are held up to poll.timeout (2 s here) and then renewed: still connected.
      await sleep(2500);
      assert.equal(c.state, 'connected');
      await apiPublish(h, KEY, `fb-${name}`, { from: 'later' });
      const sub = c.getSubscription(`fb-${name}`);
      await until(() => sub.offset === 3, T(5000), 'publication after a renewed poll');
    });
  });
}

test('back to WebSocket once the proxy lets it through, without losing publications', { timeout: T(40000) }, async () => {
  await withProxiedServer(async (h, proxy) => {
    const c = new Herald(proxy.url, { WebSocket, upgradeInterval: 400, timeout: T(3000) });
    clients.push(c);
    c.connect();
    await c.ready(T(8000));
    assert.equal(c.transportName, 'http_stream');
    const sub = c.subscribe('upg', { recover: true });
    const got = collect(sub, 'publication');
    await sub.ready(T(5000));
    let stop = false;
    let n = 0;
    const publisher = (async () => {
      while (!stop) { await apiPublish(h, KEY, 'upg', { n: ++n }); await sleep(10); }
    })();
    await sleep(800);
    assert.equal(c.transportName, 'http_stream', 'stays on the fallback while WebSocket is refused');
    proxy.blockUpgrades = false;
    await until(() => c.transportName === 'websocket' && c.state === 'connected', T(8000), 'upgrade to websocket');
    await sleep(300);
    stop = true;
    await publisher;
    await until(() => got.length >= n, T(8000), `all ${n} publications`);
    await sleep(200);
    assert.deepEqual(got.map((p) => p.data.n), Array.from({ length: n }, (_, k) => k + 1), 'no loss, no duplicate across the switch');
  });
});

/** A loopback port with nothing listening on it. */
function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

test('nothing listening: WebSocket is retried (no fallback), ready() says ECONNREFUSED; then connects over WebSocket', { timeout: T(30000) }, async () => {
  const port = await freePort();
  const c = new Herald(`http://127.0.0.1:${port}`, { WebSocket, minReconnectDelay: 50, maxReconnectDelay: 200, timeout: T(3000) });
  clients.push(c);
  const tr = collect(c, 'transport');
  c.connect();
  const err = await c.ready(T(1500)).then(() => null, (e) => e);
  assert.ok(err, 'ready() rejects while nothing listens');
  assert.equal(err.code, ErrorCodes.NO_TRANSPORT, err.message);
  assert.match(err.message, /ECONNREFUSED/);
  assert.ok(tr.length >= 2 && tr.every((x) => x.failed && x.transport === 'websocket'), JSON.stringify(tr));
  const h = await startHerald(['--api-key', KEY, '--listen', `127.0.0.1:${port}`]);
  try {
    await c.ready(T(5000));
    assert.equal(c.transportName, 'websocket');
  } catch (e) {
    throw annotate(e, h);
  } finally {
    c.disconnect();
    await h.stop();
  }
});

test('WebSocket failed once as the server came back: back on WebSocket at once, not after upgradeInterval', { timeout: T(30000) }, async () => {
  await withProxiedServer(async (h, proxy) => {
    proxy.refuseNext = 1; // the WebSocket attempt is cut; the HTTP fallback then gets through
    const c = new Herald(`http://127.0.0.1:${proxy.port}`, { WebSocket, upgradeInterval: 60000, minReconnectDelay: 100, timeout: T(3000) });
    clients.push(c);
    const tr = collect(c, 'transport');
    c.connect();
    await c.ready(T(5000));
    assert.equal(tr[0].transport, 'websocket');
    assert.equal(tr[0].failed, true);
    await until(() => c.transportName === 'websocket' && c.state === 'connected', T(5000), 'back on WebSocket');
    assert.ok(tr.some((x) => x.transport === 'websocket' && x.upgrade), JSON.stringify(tr));
    await exercise(h, c, 'after-refusal');
  }, tcpProxy);
});
