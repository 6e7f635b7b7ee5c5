// test_ws_node.mjs - Herald's WebSocket transport against an independent client:
// the npm `ws` package (v8), talking to the REAL herald binary on loopback.
//
// Covers /ws/echo with and without permessage-deflate: message sizes across the
// 7-bit / 16-bit / 64-bit length boundaries up to 16 MiB, text stays text and
// binary stays binary, fragmented messages, ordering, concurrency, ping/pong,
// close codes, the message-size limit (1009), subprotocol selection, the Origin
// allow-list (403) and graceful shutdown (1001, exit 0).
//
// Run: node --test tests/integration/test_ws_node.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startHerald, annotate, SLOW, withTimeout } from './lib/herald.mjs';

const KiB = 1024;
const MiB = 1024 * 1024;
const T = (ms) => ms * SLOW; // stretch timeouts under sanitizers
const TEST_TIMEOUT = T(60000);
const BIG_TIMEOUT = T(180000);

const SIZES = [0, 1, 125, 126, 65535, 65536, MiB];
const HUGE = 16 * MiB;

const MODES = [
  { name: 'no compression', perMessageDeflate: false },
  { name: 'permessage-deflate', perMessageDeflate: { threshold: 0 } },
];

// ---------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------

/**
 * Open a ws client; resolves to a Client once 'open' fired. Rejects on 'error'
 * or 'unexpected-response' (the error then carries .status and .body).
 */
function connect(url, { protocols, ...options } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, {
      maxPayload: 0, // no client-side limit: the server decides
      handshakeTimeout: T(10000),
      ...options,
    });
    const client = new Client(ws);
    const onError = (e) => { cleanup(); reject(e); };
    const onOpen = () => { cleanup(); resolve(client); };
    const onUnexpected = (req, res) => {
      cleanup();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { if (body.length < 4096) body += c; });
      const done = () => {
        const e = new Error(`unexpected response ${res.statusCode} ${res.statusMessage}: ${body}`);
        e.status = res.statusCode;
        e.headers = res.headers;
        e.body = body;
        ws.terminate();
        reject(e);
      };
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    };
    const cleanup = () => {
      ws.off('error', onError);
      ws.off('open', onOpen);
      ws.off('unexpected-response', onUnexpected);
      ws.on('error', (e) => { client.errors.push(e); });
    };
    ws.on('error', onError);
    ws.on('open', onOpen);
    ws.on('unexpected-response', onUnexpected);
  });
}

/** A ws client with a message queue and a promise for its 'close' event. */
class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.errors = [];
    ws.on('message', (data, isBinary) => {
      const msg = { data, isBinary };
      const w = this.waiters.shift();
      if (w) w.resolve(msg); else this.queue.push(msg);
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        const info = { code, reason: reason.toString('utf8') };
        for (const w of this.waiters.splice(0)) {
          w.reject(new Error(`connection closed (${code} ${info.reason}) while waiting for a message`));
        }
        resolve(info);
      });
    });
  }

  /** Next message ({data: Buffer, isBinary}), or reject after ms. */
  next(ms = TEST_TIMEOUT, what = 'echoed message') {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.ws.readyState === WebSocket.CLOSED) {
      return Promise.reject(new Error('connection is closed'));
    }
    let waiter;
    const p = new Promise((resolve, reject) => { waiter = { resolve, reject }; });
    this.waiters.push(waiter);
    return withTimeout(p, ms, what).catch((e) => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Close (if still open) and wait for the close event. */
  async close(code = 1000, reason = '') {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    return withTimeout(this.closed, T(10000), 'close handshake').catch((e) => {
      this.ws.terminate();
      throw e;
    });
  }

  /** Forcefully drop the TCP connection (cleanup path). */
  terminate() {
    try { this.ws.terminate(); } catch { /* ignore */ }
  }
}

/** A text message of exactly n UTF-8 bytes (ASCII, varied so it is not trivial to compress). */
function textOfSize(n, seed = 0) {
  const b = randomBytes(n);
  for (let i = 0; i < n; i++) b[i] = 0x20 + ((b[i] + seed) % 95); // printable ASCII
  return b.toString('latin1');
}

function describeBuf(b) {
  return `${b.length} bytes [${b.subarray(0, 16).toString('hex')}${b.length > 16 ? '…' : ''}]`;
}

/** First differing index of two buffers, or -1. */
function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function assertSameBytes(actual, expected, what) {
  if (actual.length === expected.length && actual.equals(expected)) return;
  assert.fail(`${what}: echoed ${describeBuf(actual)} != sent ${describeBuf(expected)}; ` +
    `first difference at byte ${firstDiff(actual, expected)}`);
}

async function echoText(c, text, what) {
  await c.send(text);
  const m = await c.next(TEST_TIMEOUT, `echo of ${what}`);
  assert.equal(m.isBinary, false, `${what}: text message came back as binary`);
  assertSameBytes(m.data, Buffer.from(text, 'utf8'), what);
}

async function echoBinary(c, buf, what) {
  await c.send(buf, { binary: true });
  const m = await c.next(TEST_TIMEOUT, `echo of ${what}`);
  assert.equal(m.isBinary, true, `${what}: binary message came back as text`);
  assertSameBytes(m.data, buf, what);
}

/** Start a herald for one describe() block; stop it (and report its stderr) afterwards. */
function useHerald(args = []) {
  const ctx = { h: null };
  before(async () => { ctx.h = await startHerald(args); });
  after(async () => {
    if (!ctx.h) return;
    const { code, signal } = await ctx.h.stop();
    // A crash or sanitizer report must fail the run, not vanish with the server.
    if (code !== 0) {
      assert.fail(`herald ${args.join(' ')} exited with code ${code} signal ${signal}\n${ctx.h.tail(60)}`);
    }
  });
  return ctx;
}

/** test() whose failures carry the state and stderr tail of srv.h. */
function htest(srv, name, opts, fn) {
  return test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      throw annotate(e, srv.h);
    }
  });
}

/** Run fn(client) with a connected client, always closing it. */
async function withClient(url, options, fn) {
  const c = await connect(url, options);
  try {
    return await fn(c);
  } finally {
    if (c.ws.readyState === WebSocket.OPEN) {
      await c.close().catch(() => c.terminate());
    } else {
      c.terminate();
    }
  }
}

// ---------------------------------------------------------------------------
// Echo in both compression modes
// ---------------------------------------------------------------------------

describe('ws echo, server defaults', { timeout: BIG_TIMEOUT * 4 }, () => {
  const srv = useHerald([]);
  const url = () => srv.h.wsUrl('/ws/echo');

  for (const mode of MODES) {
    const opts = { perMessageDeflate: mode.perMessageDeflate };
    const deflate = mode.perMessageDeflate !== false;

    describe(mode.name, () => {
      htest(srv, 'extension negotiation', { timeout: TEST_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          if (deflate) {
            assert.match(c.ws.extensions, /permessage-deflate/,
              `client offered permessage-deflate, server answered extensions "${c.ws.extensions}"`);
          } else {
            assert.equal(c.ws.extensions, '', 'no extension offered, none may be accepted');
          }
          assert.equal(c.ws.protocol, '', 'no subprotocol offered, none may be selected');
        });
      });

      htest(srv, `text echo, sizes ${SIZES.join(', ')}`, { timeout: TEST_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          for (const n of SIZES) await echoText(c, textOfSize(n, n), `text of ${n} bytes`);
        });
      });

      htest(srv, `binary echo, sizes ${SIZES.join(', ')}`, { timeout: TEST_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          for (const n of SIZES) await echoBinary(c, randomBytes(n), `binary of ${n} bytes`);
          // compressible binary, too (exercises the inflate path with real compression)
          for (const n of [126, 65536, MiB]) {
            await echoBinary(c, Buffer.alloc(n, 0xab), `compressible binary of ${n} bytes`);
          }
        });
      });

      htest(srv, 'multi-byte UTF-8 text stays intact', { timeout: TEST_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          const unit = 'héllo wörld ✓ Ελληνικά 日本語 😀 '; // 1-, 2-, 3- and 4-byte sequences
          for (const reps of [1, 4, 3000, 40000]) {
            const s = unit.repeat(reps);
            await echoText(c, s, `UTF-8 text of ${Buffer.byteLength(s)} bytes`);
          }
        });
      });

      // With deflate, 16 MiB of random bytes deflate to slightly MORE than 16 MiB
      // on the wire; a message of exactly websocket.echo_max_message_size (default
      // 16 MiB) must still be accepted.
      htest(srv, '16 MiB random binary echo', { timeout: BIG_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          const buf = randomBytes(HUGE);
          await c.send(buf, { binary: true });
          const m = await c.next(BIG_TIMEOUT, 'echo of 16 MiB binary');
          assert.equal(m.isBinary, true);
          assertSameBytes(m.data, buf, '16 MiB binary');
        });
      });

      htest(srv, 'fragmented text and binary messages are reassembled', { timeout: TEST_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          // text: fragment boundaries inside multi-byte characters are legal
          const text = 'fragmented ✓ message 😀 '.repeat(50);
          const tb = Buffer.from(text, 'utf8');
          const cuts = [0, 1, 13, 14, 700, 701, tb.length];
          for (let i = 0; i + 1 < cuts.length; i++) {
            // ws takes the message type from the first fragment: send text fragments
            // as strings only when they are valid UTF-8 on their own, so send Buffers
            // with binary:false to cut inside characters.
            await c.send(tb.subarray(cuts[i], cuts[i + 1]), { binary: false, fin: i + 2 === cuts.length });
          }
          let m = await c.next(TEST_TIMEOUT, 'echo of fragmented text');
          assert.equal(m.isBinary, false, 'fragmented text came back as binary');
          assert.equal(m.data.toString('utf8'), text);

          // binary: 4 fragments including an empty one and a 64 KiB one
          const parts = [randomBytes(10), Buffer.alloc(0), randomBytes(65536), randomBytes(3)];
          for (let i = 0; i < parts.length; i++) {
            await c.send(parts[i], { binary: true, fin: i === parts.length - 1 });
          }
          m = await c.next(TEST_TIMEOUT, 'echo of fragmented binary');
          assert.equal(m.isBinary, true, 'fragmented binary came back as text');
          assertSameBytes(m.data, Buffer.concat(parts), 'fragmented binary');

          // a ping between fragments must be answered and must not break the message
          const pong = new Promise((resolve) => c.ws.once('pong', resolve));
          await c.send(Buffer.from('first half, '), { binary: false, fin: false });
          c.ws.ping(Buffer.from('mid-message'));
          await c.send(Buffer.from('second half'), { binary: false, fin: true });
          const pd = await withTimeout(pong, TEST_TIMEOUT, 'pong between fragments');
          assert.equal(pd.toString(), 'mid-message');
          m = await c.next(TEST_TIMEOUT, 'echo of fragmented text with interleaved ping');
          assert.equal(m.isBinary, false);
          assert.equal(m.data.toString(), 'first half, second half');
        });
      });

      htest(srv, '1000 messages come back in order', { timeout: TEST_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          const N = 1000;
          for (let i = 0; i < N; i++) c.ws.send(i % 2 ? `msg ${i}` : Buffer.from(`bin ${i}`), { binary: i % 2 === 0 });
          for (let i = 0; i < N; i++) {
            const m = await c.next(TEST_TIMEOUT, `message ${i} of ${N}`);
            const expected = i % 2 ? `msg ${i}` : `bin ${i}`;
            assert.equal(m.data.toString(), expected, `message ${i} out of order`);
            assert.equal(m.isBinary, i % 2 === 0, `message ${i} has the wrong type`);
          }
        });
      });

      htest(srv, '20 concurrent clients x 100 messages', { timeout: TEST_TIMEOUT }, async () => {
        const clients = [];
        try {
          for (let k = 0; k < 20; k++) clients.push(connect(url(), opts));
          const cs = await Promise.all(clients);
          await Promise.all(cs.map(async (c, k) => {
            // interleave sends and receives: keep up to 10 messages in flight
            let recv = 0;
            for (let i = 0; i < 100; i++) {
              c.ws.send(`client ${k} message ${i} ${'x'.repeat(i * 7)}`);
              if (i >= 10) {
                const m = await c.next(TEST_TIMEOUT, `client ${k} message ${recv}`);
                assert.equal(m.data.toString(), `client ${k} message ${recv} ${'x'.repeat(recv * 7)}`);
                recv++;
              }
            }
            while (recv < 100) {
              const m = await c.next(TEST_TIMEOUT, `client ${k} message ${recv}`);
              assert.equal(m.data.toString(), `client ${k} message ${recv} ${'x'.repeat(recv * 7)}`);
              recv++;
            }
          }));
          await Promise.all(cs.map((c) => c.close()));
        } finally {
          for (const p of clients) p.then((c) => c.terminate(), () => {});
        }
      });

      htest(srv, 'ping gets a pong with the same payload', { timeout: TEST_TIMEOUT }, async () => {
        await withClient(url(), opts, async (c) => {
          for (const payload of [Buffer.alloc(0), Buffer.from('herald-ping-123'), randomBytes(125)]) {
            const pong = new Promise((resolve) => c.ws.once('pong', resolve));
            c.ws.ping(payload);
            const data = await withTimeout(pong, TEST_TIMEOUT, `pong for ${payload.length}-byte ping`);
            assertSameBytes(data, payload, 'pong payload');
          }
          // the connection still works afterwards
          await echoText(c, 'after ping', 'text after pings');
        });
      });

      htest(srv, 'client close 4000 is answered with close 4000', { timeout: TEST_TIMEOUT }, async () => {
        const c = await connect(url(), opts);
        try {
          await echoText(c, 'before close', 'text before close');
          const info = await c.close(4000, 'client says bye');
          assert.equal(info.code, 4000, `expected the server to echo close code 4000, got ${info.code} "${info.reason}"`);
        } finally {
          c.terminate();
        }
      });
    });
  }
});

// ---------------------------------------------------------------------------
// Server options
// ---------------------------------------------------------------------------

describe('server with --websocket.deflate false', { timeout: BIG_TIMEOUT }, () => {
  const srv = useHerald(['--websocket.deflate', 'false']);

  htest(srv, 'permessage-deflate offered but not negotiated; echo works', { timeout: TEST_TIMEOUT }, async () => {
    await withClient(srv.h.wsUrl(), { perMessageDeflate: { threshold: 0 } }, async (c) => {
      assert.equal(c.ws.extensions, '',
        `server runs with deflate off but answered extensions "${c.ws.extensions}"`);
      await echoText(c, textOfSize(65536), 'text of 65536 bytes');
      await echoBinary(c, randomBytes(MiB), 'binary of 1 MiB');
    });
  });
});

describe('server with a 1 MiB message limit', { timeout: BIG_TIMEOUT }, () => {
  // The frame limit defaults to 16 MiB and may not exceed the message limit, so
  // both are lowered.
  const srv = useHerald(['--websocket.max-frame-size', '1MiB', '--websocket.echo-max-message-size', '1MiB']);

  for (const mode of MODES) {
    const opts = { perMessageDeflate: mode.perMessageDeflate };
    describe(mode.name, () => {
      htest(srv, 'a message of exactly 1 MiB is accepted', { timeout: TEST_TIMEOUT }, async () => {
        await withClient(srv.h.wsUrl(), opts, async (c) => {
          // Compressible under deflate: random bytes grow by a few bytes when
          // deflated and would hit the (wire) frame limit instead; the 16 MiB
          // test above covers that case with the default limits.
          const data = mode.perMessageDeflate === false ? randomBytes(MiB) : Buffer.alloc(MiB, 0x61);
          await echoBinary(c, data, 'binary of 1 MiB');
          await echoText(c, 'y'.repeat(MiB), 'text of 1 MiB');
        });
      });

      htest(srv, 'a 2 MiB message is refused with close 1009', { timeout: TEST_TIMEOUT }, async () => {
        const c = await connect(srv.h.wsUrl(), opts);
        try {
          c.ws.send(randomBytes(2 * MiB), { binary: true }, () => {});
          const info = await withTimeout(c.closed, TEST_TIMEOUT, 'server closing after a 2 MiB message');
          assert.equal(info.code, 1009, `sent a 2 MiB binary message (one frame); expected close 1009, got ${info.code} "${info.reason}"`);
          assert.equal(c.queue.length, 0, 'an oversized message must not be echoed');
        } finally {
          c.terminate();
        }
      });

      htest(srv, 'a 2 MiB message in 512 KiB fragments is refused with close 1009', { timeout: TEST_TIMEOUT }, async () => {
        const c = await connect(srv.h.wsUrl(), opts);
        try {
          for (let i = 0; i < 4; i++) {
            c.ws.send(randomBytes(512 * KiB), { binary: true, fin: i === 3 }, () => {});
          }
          const info = await withTimeout(c.closed, TEST_TIMEOUT, 'server closing after 4 x 512 KiB fragments');
          assert.equal(info.code, 1009, `sent 4 x 512 KiB fragments; expected close 1009, got ${info.code} "${info.reason}"`);
          assert.equal(c.queue.length, 0, 'an oversized message must not be echoed');
        } finally {
          c.terminate();
        }
      });

      if (mode.perMessageDeflate !== false) {
        htest(srv, '2 MiB of zeros (compresses to ~2 KiB) is refused with close 1009', { timeout: TEST_TIMEOUT }, async () => {
          const c = await connect(srv.h.wsUrl(), opts);
          try {
            assert.match(c.ws.extensions, /permessage-deflate/);
            c.ws.send(Buffer.alloc(2 * MiB), { binary: true, compress: true }, () => {});
            const info = await withTimeout(c.closed, TEST_TIMEOUT, 'server closing after a 2 MiB inflated message');
            assert.equal(info.code, 1009, `sent 2 MiB of zeros deflated; expected close 1009, got ${info.code} "${info.reason}"`);
          } finally {
            c.terminate();
          }
        });
      }
    });
  }
});

describe('subprotocols chat,superchat', { timeout: BIG_TIMEOUT }, () => {
  const srv = useHerald(['--websocket.subprotocols', 'chat,superchat']);

  htest(srv, "client offering ['superchat','chat'] gets 'chat' (server preference)", { timeout: TEST_TIMEOUT }, async () => {
    await withClient(srv.h.wsUrl(), { protocols: ['superchat', 'chat'] }, async (c) => {
      assert.equal(c.ws.protocol, 'chat');
      await echoText(c, 'hello chat', 'text');
    });
  });

  htest(srv, "client offering ['superchat'] gets 'superchat'", { timeout: TEST_TIMEOUT }, async () => {
    await withClient(srv.h.wsUrl(), { protocols: ['superchat'] }, async (c) => {
      assert.equal(c.ws.protocol, 'superchat');
    });
  });

  htest(srv, 'client offering none gets none', { timeout: TEST_TIMEOUT }, async () => {
    await withClient(srv.h.wsUrl(), {}, async (c) => {
      assert.equal(c.ws.protocol, '');
    });
  });
});

describe('Origin allow-list', { timeout: BIG_TIMEOUT }, () => {
  const srv = useHerald(['--websocket.allowed-origins', 'https://good.example']);

  htest(srv, 'a foreign Origin is refused with 403', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(
      connect(srv.h.wsUrl(), { origin: 'https://evil.example' }),
      (e) => {
        assert.equal(e.status, 403, `Origin https://evil.example: expected HTTP 403, got ${e.status ?? e.message}`);
        return true;
      });
  });

  htest(srv, 'the allowed Origin connects', { timeout: TEST_TIMEOUT }, async () => {
    await withClient(srv.h.wsUrl(), { origin: 'https://good.example' }, async (c) => {
      await echoText(c, 'from a good origin', 'text');
    });
  });
});

describe('graceful shutdown', { timeout: BIG_TIMEOUT }, () => {
  test('SIGTERM closes every client with 1001 and herald exits 0', { timeout: TEST_TIMEOUT }, async () => {
    const h = await startHerald([]);
    const clients = [];
    try {
      for (let i = 0; i < 5; i++) {
        clients.push(await connect(h.wsUrl(), { perMessageDeflate: i % 2 ? { threshold: 0 } : false }));
      }
      for (const c of clients) await echoText(c, 'still here', 'text before shutdown');
      h.kill('SIGTERM');
      const infos = await withTimeout(Promise.all(clients.map((c) => c.closed)), T(20000),
        'close events after SIGTERM');
      for (const [i, info] of infos.entries()) {
        assert.equal(info.code, 1001, `client ${i}: expected close 1001 on shutdown, got ${info.code} "${info.reason}"`);
      }
      const exit = await withTimeout(h.exited, T(20000), 'herald exit after SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null },
        `herald should exit 0 after SIGTERM, got ${JSON.stringify(exit)}\n${h.tail(40)}`);
    } catch (e) {
      throw annotate(e, h);
    } finally {
      for (const c of clients) c.terminate();
      await h.stop();
    }
  });
});
