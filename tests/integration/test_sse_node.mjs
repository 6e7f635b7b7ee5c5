// test_sse_node.mjs - Herald's Server-Sent Events (/sse) against an independent
// client: the npm `eventsource` package (v3, WHATWG EventSource on fetch; v4 needs Node 20), talking
// to the REAL herald binary on loopback.
//
// Covers: live delivery (onmessage gets each publication's data, in order, with
// an id carrying every channel's position), several channels on one stream, the
// `connected` event, and the automatic reconnect after the server ends the stream
// (server API disconnect, five times in a row, publishing while the client is
// away each time): nothing lost, nothing twice, in order per channel; a recovery_failed event
// when the history no longer covers the client's position; a refused request
// (400) is not retried.
//
// Run: node --test tests/integration/test_sse_node.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { startHerald, annotate, SLOW, withTimeout, sleep } from './lib/herald.mjs';

const T = (ms) => ms * SLOW; // stretch timeouts under sanitizers
const API_KEY = 'nodekey';
const ID_RE = /^[0-9A-Za-z_-]{1,16}:\d+(\.[0-9A-Za-z_-]{1,16}:\d+)*$/;

let seq = 0;
const chan = (prefix = 'node') => `${prefix}:${process.pid}-${++seq}`;
const offsets = (id) => id.split('.').map((e) => Number(e.split(':')[1]));

/** An EventSource with everything it receives recorded, and ways to wait for it. */
class Stream {
  constructor(url) {
    this.es = new EventSource(url);
    this.messages = [];   // {data, lastEventId}
    this.connected = [];  // client ids, one per (re)connection
    this.others = [];     // {type, data}
    this.errors = 0;
    this.waiters = [];
    this.es.onmessage = (e) => { this.messages.push({ data: e.data, lastEventId: e.lastEventId }); this.poke(); };
    this.es.addEventListener('connected', (e) => { this.connected.push(JSON.parse(e.data).client); this.poke(); });
    for (const type of ['disconnect', 'recovery_failed', 'join', 'leave', 'unsubscribe']) {
      this.es.addEventListener(type, (e) => { this.others.push({ type, data: JSON.parse(e.data) }); this.poke(); });
    }
    this.es.onerror = () => { this.errors++; this.poke(); };
  }

  poke() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolve once pred() holds (checked after every event). */
  until(pred, what, ms = T(10000)) {
    const check = (resolve) => { if (pred()) resolve(); else this.waiters.push(() => check(resolve)); };
    return withTimeout(new Promise(check), ms,
      `${what} (messages ${this.messages.length}, connected ${this.connected.length}, errors ${this.errors}, ` +
      `readyState ${this.es.readyState})`);
  }

  get clientId() { return this.connected[this.connected.length - 1]; }

  close() { this.es.close(); }
}

describe('SSE with the eventsource package', () => {
  let herald;
  const api = async (method, body) => {
    const res = await fetch(`${herald.url}/api/${method}`, {
      method: 'POST',
      headers: { Authorization: `apikey ${API_KEY}` },
      body: JSON.stringify(body),
    });
    const json = await res.json();
    assert.equal(res.status, 200, `${method}: ${JSON.stringify(json)}`);
    return json;
  };
  const publish = (channel, data) => api('publish', { channel, data });
  const sseUrl = (...channels) => `${herald.url}/sse?${channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&')}`;

  before(async () => {
    herald = await startHerald(['--api-key', API_KEY, '--sse.retry', '100ms', '--channels.history-size', '1000',
      '--namespace.short.history-size', '2']);
  });
  after(async () => {
    const { code } = await herald.stop();
    assert.equal(code, 0, `herald exit code ${code}\n${herald.tail()}`);
  });

  test('live delivery in order, ids carry every channel', { timeout: T(60000) }, async () => {
    const a = chan(); const b = chan();
    const s = new Stream(sseUrl(a, b));
    try {
      await s.until(() => s.connected.length === 1, 'connected event');
      assert.match(s.clientId, /^[0-9a-f]{32}$/);
      for (let i = 0; i < 100; i++) await publish(i % 2 ? b : a, { i });
      await s.until(() => s.messages.length === 100, '100 messages');
      assert.deepEqual(s.messages.map((m) => JSON.parse(m.data).i), [...Array(100).keys()]);
      s.messages.forEach((m, i) => {
        assert.match(m.lastEventId, ID_RE);
        assert.deepEqual(offsets(m.lastEventId), [Math.floor(i / 2) + 1, Math.floor((i + 1) / 2)]);
      });
      await sleep(T(200));
      assert.equal(s.messages.length, 100, 'nothing extra');
      assert.equal(s.errors, 0);
    } catch (e) { throw annotate(e, herald); } finally { s.close(); }
  });

  test('automatic reconnect after the server ends the stream: no loss, no duplicate', { timeout: T(120000) },
    async () => {
      const a = chan(); const b = chan();
      const s = new Stream(sseUrl(a, b));
      let n = 0;
      const pub = async (k) => { for (let i = 0; i < k; i++, n++) await publish(n % 3 ? a : b, { n }); };
      try {
        await s.until(() => s.connected.length === 1, 'connected event');
        await pub(10);
        const CYCLES = 5;
        for (let cycle = 1; cycle <= CYCLES; cycle++) {
          await s.until(() => s.messages.length === n, `cycle ${cycle}: ${n} messages before the disconnect`);
          const errorsBefore = s.errors;
          await api('disconnect', { client: s.clientId, reason: `cycle ${cycle}` });
          // the stream ended: the client is reconnecting (readyState CONNECTING, an error event)
          await s.until(() => s.errors > errorsBefore, `cycle ${cycle}: error event after the end`);
          await pub(15); // while it is away (retry is 100 ms: most of these land before it is back)
          await s.until(() => s.connected.length === cycle + 1, `cycle ${cycle}: reconnected`);
          await pub(5); // live again
        }
        await s.until(() => s.messages.length === n, `${n} messages at the end`);
        await sleep(T(300));
        // order is per channel (a recovery replays one channel, then the next)
        const got = s.messages.map((m) => JSON.parse(m.data).n);
        const all = [...Array(n).keys()];
        assert.deepEqual(got.filter((k) => k % 3), all.filter((k) => k % 3), 'channel a: each once, in order');
        assert.deepEqual(got.filter((k) => !(k % 3)), all.filter((k) => !(k % 3)), 'channel b: each once, in order');
        assert.equal(got.length, n);
        const disc = s.others.filter((o) => o.type === 'disconnect');
        assert.equal(disc.length, CYCLES);
        assert.deepEqual(disc[0].data, { code: 3000, reason: 'cycle 1', reconnect: true });
        assert.equal(s.others.filter((o) => o.type === 'recovery_failed').length, 0);
        assert.equal(new Set(s.connected).size, CYCLES + 1, 'a new client id per connection');
        const last = offsets(s.messages[n - 1].lastEventId);
        assert.equal(last[0] + last[1], n);
      } catch (e) { throw annotate(e, herald); } finally { s.close(); }
    });

  test('recovery_failed when the history no longer covers the position, then live', { timeout: T(60000) },
    async () => {
      const short = chan('short'); // keeps 2 publications
      const s = new Stream(sseUrl(short));
      try {
        await s.until(() => s.connected.length === 1, 'connected event');
        await publish(short, 'seen');
        await s.until(() => s.messages.length === 1, 'first message');
        // counted before asking: the stream's end can reach the client before the API's answer
        const errorsBefore = s.errors;
        await api('disconnect', { client: s.clientId });
        await s.until(() => s.errors > errorsBefore, 'error event after the end');
        // one request, well inside the 100 ms the client waits before reconnecting
        const { replies } = await api('batch', {
          commands: [...Array(6).keys()].map((i) => ({ method: 'publish', params: { channel: short, data: `missed ${i}` } })),
        });
        const many = replies.map((r) => r.result);
        await s.until(() => s.connected.length === 2, 'reconnected');
        await s.until(() => s.others.some((o) => o.type === 'recovery_failed'), 'recovery_failed');
        const rf = s.others.find((o) => o.type === 'recovery_failed');
        // unless the reconnect was faster than the six publishes
        const landed = s.messages.length - 1;
        assert.deepEqual(rf.data, { channel: short, epoch: many[0].epoch, offset: 1 + 6 - landed });
        await publish(short, 'live');
        await s.until(() => s.messages.at(-1)?.data === '"live"', 'live message after recovery_failed');
      } catch (e) { throw annotate(e, herald); } finally { s.close(); }
    });

  test('a refused request is not retried', { timeout: T(30000) }, async () => {
    const s = new Stream(`${herald.url}/sse?channel=a..b`);
    try {
      await s.until(() => s.es.readyState === EventSource.CLOSED, 'closed after the 400');
      await sleep(T(400));
      assert.equal(s.errors, 1);
      assert.equal(s.connected.length, 0);
    } catch (e) { throw annotate(e, herald); } finally { s.close(); }
  });
});
