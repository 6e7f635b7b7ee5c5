// test_sdk_node.mjs - the JavaScript SDK (clients/js) in Node against the REAL
// herald binary: reconnect with backoff after the server is killed and
// restarted on the same port; recovery with no loss and no duplicate across
// connection cuts; the offline queue delivered exactly once (including
// publishes whose acknowledgement was lost); dead-connection detection by
// heartbeat; MessagePack. WebSocket is the `ws` package (Node 18 and 20 have no global
// WebSocket); every connection is on 127.0.0.1.
//
// Run: node --test tests/integration/test_sdk_node.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, annotate, SLOW, sleep } from './lib/herald.mjs';
import { loadSdk, apiPublish, apiCall, collect, until, tcpProxy } from './lib/sdk.mjs';

const T = (ms) => ms * SLOW;
const KEY = 'sdk-test-key';
// the API key, and client publish for every channel (opt-in, docs/auth.md): the tests publish from the SDK
const SERVER_ARGS = ['--api-key', KEY, '--channels.publish', 'anyone'];
const { Herald, DisconnectError } = await loadSdk();
const clients = [];
after(() => { for (const c of clients) c.disconnect(); });

function newClient(url, opts = {}) {
  const c = new Herald(url, { WebSocket, transports: ['websocket'], minReconnectDelay: 50, maxReconnectDelay: 400, timeout: T(3000), ...opts });
  clients.push(c);
  return c;
}

async function withServer(args, fn) {
  const h = await startHerald([...SERVER_ARGS, ...args]);
  try {
    return await fn(h);
  } catch (e) {
    throw annotate(e, h);
  } finally {
    await h.stop();
  }
}

test('reconnect with backoff after the server is killed, then restarted on the same port', { timeout: T(45000) }, async () => {
  const h1 = await startHerald([...SERVER_ARGS]);
  const port = h1.port;
  let h2 = null;
  try {
    const c = newClient(h1.url, { minReconnectDelay: 100, maxReconnectDelay: 800 });
    const connecting = collect(c, 'connecting');
    const disconnected = collect(c, 'disconnected');
    c.connect();
    await c.ready(T(5000));
    const sub = c.subscribe('news');
    const got = collect(sub, 'publication');
    const failed = collect(sub, 'recovery_failed');
    await sub.ready(T(5000));
    await apiPublish(h1, KEY, 'news', { n: 1 });
    await until(() => got.length === 1, T(5000), 'first publication');
    const firstId = c.clientId;

    h1.kill('SIGKILL');
    await h1.exited;
    await until(() => disconnected.length === 1, T(5000), 'disconnected event');
    assert.equal(disconnected[0].reconnect, true, JSON.stringify(disconnected[0]));
    // Down for 2.5 s: attempts keep coming, spaced by the backoff windows.
    await sleep(2500);
    const waits = connecting.filter((x) => x.delay !== undefined);
    assert.ok(waits.length >= 3, `at least 3 attempts while down, got ${waits.length}`);
    assert.ok(waits.length <= 40, `backoff, not a busy loop: ${waits.length} attempts in 2.5 s`);
    waits.forEach((w, i) => {
      const ceiling = Math.min(800, 100 * 2 ** i);
      assert.ok(w.delay >= 0 && w.delay <= ceiling, `attempt ${i}: delay ${w.delay} outside [0, ${ceiling}]`);
    });
    assert.equal(c.state, 'connecting');
    // Published while the server is down: queued, sent after the resubscribe,
    // so it reaches our own subscription although recovery fails.
    const offline = c.publish('news', { n: 'offline' });

    h2 = await startHerald([...SERVER_ARGS, '--listen', `127.0.0.1:${port}`]);
    assert.equal(h2.port, port, 'restarted on the same port');
    await until(() => c.state === 'connected' && sub.state === 'subscribed', T(10000), 'reconnected and resubscribed');
    assert.notEqual(c.clientId, firstId);
    // A restarted memory engine has a new epoch: the SDK says it cannot recover.
    assert.equal(failed.length, 1, 'recovery_failed after a memory-engine restart');
    assert.equal((await offline).offset, 1);
    await until(() => got.length === 2, T(5000), 'the publication queued while the server was down');
    await apiPublish(h2, KEY, 'news', { n: 2 });
    await until(() => got.length === 3, T(5000), 'publication after the restart');
    assert.deepEqual(got.map((p) => p.data), [{ n: 1 }, { n: 'offline' }, { n: 2 }]);
    assert.equal(c.transportName, 'websocket');
  } catch (e) {
    throw annotate(e, h2 || h1);
  } finally {
    await h1.stop();
    if (h2) await h2.stop();
  }
});

test('recovery: 400 publications across cut connections arrive once each, in order', { timeout: T(50000) }, async () => {
  await withServer([], async (h) => {
    const proxy = await tcpProxy(h.port);
    try {
      const c = newClient(`http://127.0.0.1:${proxy.port}`, { minReconnectDelay: 20, maxReconnectDelay: 100 });
      c.connect();
      const sub = c.subscribe('score', { recover: true });
      const got = collect(sub, 'publication');
      const recovered = collect(sub, 'recovered');
      await sub.ready(T(5000));
      const N = 400;
      const publisher = (async () => {
        for (let i = 1; i <= N; i++) {
          await apiPublish(h, KEY, 'score', { i });
          if (i % 10 === 0) await sleep(5);
        }
      })();
      let cuts = 0;
      while (got.length < N && cuts < 6) {
        await sleep(120);
        if (cuts === 3) {
          await apiCall(h, KEY, 'disconnect', { client: c.clientId, code: 3000, reason: 'test' }).catch(() => {});
        } else {
          proxy.cutAll();
        }
        cuts++;
        await until(() => c.state === 'connected', T(5000), 'reconnect after a cut');
      }
      await publisher;
      await until(() => got.length >= N, T(15000), `all ${N} publications (have ${got.length})`);
      await sleep(200);
      assert.equal(got.length, N, 'no duplicate');
      assert.deepEqual(got.map((p) => p.data.i), Array.from({ length: N }, (_, k) => k + 1), 'no loss, in order');
      assert.deepEqual(got.map((p) => p.offset), Array.from({ length: N }, (_, k) => k + 1));
      assert.ok(recovered.length >= 1, `recovered after cuts (${recovered.length} times)`);
    } finally {
      await proxy.close();
    }
  });
});

test('offline queue: publishes made offline, and publishes whose ack was lost, are delivered exactly once', { timeout: T(40000) }, async () => {
  await withServer([], async (h) => {
    const proxy = await tcpProxy(h.port);
    try {
      const watcher = newClient(h.url);
      watcher.connect();
      const wsub = watcher.subscribe('orders');
      const seen = collect(wsub, 'publication');
      await wsub.ready(T(5000));

      const c = newClient(`http://127.0.0.1:${proxy.port}`, { maxQueued: 30, minReconnectDelay: 50, maxReconnectDelay: 200 });
      c.connect();
      await c.ready(T(5000));

      // 1. Acks lost: the server receives and stores, the replies never come back.
      proxy.mode = 'downdrop';
      const lost = Array.from({ length: 10 }, (_, i) => c.publish('orders', { n: i }));
      await until(() => seen.length === 10, T(5000), 'the server stored the 10 (acks dropped)');
      proxy.mode = 'refuse';
      proxy.cutAll();
      await until(() => c.state === 'connecting', T(5000), 'client notices the cut');

      // 2. Offline: queued, bounded.
      const offline = Array.from({ length: 20 }, (_, i) => c.publish('orders', { n: 10 + i }));
      await assert.rejects(c.publish('orders', { n: 'too many' }),
        (e) => e.name === 'QueueFullError' && e.code === 3 && e.temporary === true);
      assert.equal(c.queued, 30);
      await sleep(300);

      proxy.mode = 'pass';
      const acks = await Promise.all([...lost, ...offline]);
      assert.deepEqual(acks.map((a) => a.offset), Array.from({ length: 30 }, (_, k) => k + 1),
        'every publish acknowledged with its own offset (the resent ones with the original)');
      await until(() => seen.length >= 30, T(5000), 'all 30 delivered');
      await sleep(300);
      assert.deepEqual(seen.map((p) => p.data.n), Array.from({ length: 30 }, (_, k) => k), 'exactly once, in order');
      assert.equal(c.queued, 0);
    } finally {
      await proxy.close();
    }
  });
});

test('heartbeat: a connection that goes silent (black-holed) is detected and replaced', { timeout: T(30000) }, async () => {
  await withServer([], async (h) => {
    const proxy = await tcpProxy(h.port);
    try {
      const c = newClient(`http://127.0.0.1:${proxy.port}`, { pingInterval: 300, pongTimeout: 500, timeout: 1000 });
      const disc = collect(c, 'disconnected');
      c.connect();
      const sub = c.subscribe('hb');
      const got = collect(sub, 'publication');
      await sub.ready(T(5000));
      proxy.mode = 'blackhole';
      const t0 = Date.now();
      await until(() => disc.length === 1, T(5000), 'dead connection detected');
      const ms = Date.now() - t0;
      assert.match(disc[0].reason, /no heartbeat/);
      assert.ok(ms < 2500, `detected in ${ms} ms (ping after 300 ms of silence, 500 ms to answer)`);
      await apiPublish(h, KEY, 'hb', 'while dead');
      proxy.mode = 'pass';
      await until(() => c.state === 'connected', T(10000), 'reconnected');
      await until(() => got.length === 1, T(5000), 'missed publication recovered');
      assert.equal(got[0].data, 'while dead');
    } finally {
      await proxy.close();
    }
  });
});

test('MessagePack over WebSocket: subscribe, publish, history, presence', { timeout: T(20000) }, async () => {
  await withServer([], async (h) => {
    const c = newClient(h.url, { format: 'msgpack' });
    c.connect();
    const sub = c.subscribe('mp');
    const got = collect(sub, 'publication');
    await sub.ready(T(5000));
    const r = await c.publish('mp', { text: 'héllo', n: 2 ** 40, f: 0.5, list: [null, true] });
    assert.equal(r.offset, 1);
    await until(() => got.length === 1, T(5000), 'own publication');
    assert.deepEqual(got[0].data, { text: 'héllo', n: 2 ** 40, f: 0.5, list: [null, true] });
    const hist = await sub.history({ limit: 5 });
    assert.equal(hist.publications.length, 1);
    const pres = await sub.presence();
    assert.ok(pres.clients[c.clientId], 'presence lists this client');
  });
});

test('historyPages pages a channel forward and backward by next (JSON and MessagePack)', { timeout: T(30000) }, async () => {
  await withServer(['--channels.history-size', '1000'], async (h) => {
    const cmds = Array.from({ length: 95 }, (_, i) => ({ method: 'publish', params: { channel: 'log', data: { i: i + 1 } } }));
    await apiCall(h, KEY, 'batch', { commands: cmds });
    const all = Array.from({ length: 95 }, (_, i) => i + 1);
    for (const format of ['json', 'msgpack']) {
      const c = newClient(h.url, { format });
      c.connect();
      await c.ready(T(5000));
      const walk = async (opts) => {
        const seen = [];
        let pages = 0;
        for await (const page of c.historyPages('log', opts)) {
          pages++;
          assert.ok(page.publications.length <= 20, `${format}: page size`);
          if (page.more) assert.deepEqual(page.next, { offset: page.publications.at(-1).offset, epoch: page.epoch });
          seen.push(...page.publications.map((p) => p.offset));
        }
        return [seen, pages];
      };
      assert.deepEqual(await walk({ limit: 20 }), [all, 5], `${format} forward`);
      assert.deepEqual(await walk({ limit: 20, reverse: true }), [all.slice().reverse(), 5], `${format} backward`);
      const { epoch } = await c.history('log', { limit: 0 });
      const [range] = await walk({ limit: 20, reverse: true, since: { offset: 10, epoch }, before: { offset: 50, epoch } });
      assert.deepEqual(range, all.slice(10, 49).reverse(), `${format} range`);
      c.disconnect();
    }
  });
});

test('a server disconnect with a "do not reconnect" code stops the client', { timeout: T(20000) }, async () => {
  await withServer([], async (h) => {
    const c = newClient(h.url);
    const errors = collect(c, 'error');
    const connecting = collect(c, 'connecting');
    c.connect();
    await c.ready(T(5000));
    await apiCall(h, KEY, 'disconnect', { client: c.clientId, code: 4001, reason: 'banned' });
    await until(() => c.state === 'disconnected', T(5000), 'stopped');
    const n = connecting.length;
    await sleep(600);
    assert.equal(connecting.length, n, 'no reconnect attempt');
    const e = errors.find((x) => x instanceof DisconnectError);
    assert.ok(e, 'a DisconnectError');
    assert.equal(e.code, 4001);
    assert.equal(e.reason, 'banned');
    assert.equal(e.temporary, false);
  });
});
