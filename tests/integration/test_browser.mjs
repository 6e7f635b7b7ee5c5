// test_browser.mjs - Herald's WebSocket transport against a real browser: Debian's
// headless Chromium driven by npm playwright-core (no downloaded browsers), using
// the page's own `new WebSocket(...)`, against the REAL herald binary on loopback.
//
// Covers: the demo page served with --static, echo of text and ArrayBuffer
// messages of 0 B .. 16 MiB with permessage-deflate (Chromium always offers it)
// and with the server's deflate turned off, and the 1001 close on SIGTERM.
// Fragmented sends are impossible from the browser API (Python/ws tests cover them).
//
// Run: node --test tests/integration/test_browser.mjs
// Env: HERALD_BIN, HERALD_SOURCE_DIR, HERALD_SANITIZE, HERALD_CHROMIUM (default
// /usr/bin/chromium), HERALD_SCREENSHOT_DIR (default: the herald binary's directory).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startHerald, annotate, REPO, HERALD_BIN, SLOW, withTimeout } from './lib/herald.mjs';

const MiB = 1024 * 1024;
const T = (ms) => ms * SLOW;
const TEST_TIMEOUT = T(90000);
const BIG_TIMEOUT = T(240000);

const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage',
];
const EXAMPLES = path.join(REPO, 'examples');
const HAVE_INDEX = existsSync(path.join(EXAMPLES, 'index.html'));
const SKIP = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (set HERALD_CHROMIUM)`;

const SIZES = [0, 1, 125, 65536, MiB];
const HUGE = 16 * MiB;

// ---------------------------------------------------------------------------
// Code that runs inside the page (serialised by page.evaluate).
// ---------------------------------------------------------------------------

/** Open window.__ws to url; resolves to {extensions, protocol} or {error}. */
function pageOpen({ url, timeoutMs }) {
  return new Promise((resolve) => {
    const old = window.__ws;
    if (old) {
      old.onmessage = old.onclose = old.onopen = null;
      try { old.close(1000); } catch { /* already closed */ }
    }
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    window.__ws = ws;
    window.__queue = [];
    window.__waiters = [];
    window.__close = null;
    ws.onmessage = (ev) => {
      const w = window.__waiters.shift();
      if (w) w(ev); else window.__queue.push(ev);
    };
    ws.onclose = (ev) => {
      window.__close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
      for (const w of window.__waiters.splice(0)) w(null);
      resolve({ error: `closed before open: ${ev.code} ${ev.reason}` });
    };
    const timer = setTimeout(() => resolve({ error: `no open within ${timeoutMs} ms` }), timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve({ extensions: ws.extensions, protocol: ws.protocol });
    };
  });
}

/**
 * Echo one message of `size` bytes of `kind` ('text' | 'binary' | 'text-x') over
 * window.__ws; everything is generated and compared in the page, only a summary
 * comes back.
 */
async function pageEcho({ kind, size, timeoutMs }) {
  const ws = window.__ws;
  const next = () => new Promise((resolve) => {
    if (window.__queue.length) { resolve(window.__queue.shift()); return; }
    if (ws.readyState !== WebSocket.OPEN) { resolve(null); return; }
    const timer = setTimeout(() => {
      const i = window.__waiters.indexOf(waiter);
      if (i >= 0) window.__waiters.splice(i, 1);
      resolve('timeout');
    }, timeoutMs);
    const waiter = (ev) => { clearTimeout(timer); resolve(ev); };
    window.__waiters.push(waiter);
  });
  const randomBytes = (n) => {
    const a = new Uint8Array(n);
    for (let o = 0; o < n; o += 65536) crypto.getRandomValues(a.subarray(o, Math.min(n, o + 65536)));
    return a;
  };
  let sent;
  if (kind === 'binary') {
    sent = randomBytes(size);
  } else if (kind === 'text-x') {
    sent = 'x'.repeat(size);
  } else {
    const b = randomBytes(size);
    const parts = [];
    for (let o = 0; o < size; o += 8192) {
      const chunk = b.subarray(o, Math.min(size, o + 8192)).map((v) => 0x20 + (v % 95));
      parts.push(String.fromCharCode.apply(null, chunk));
    }
    sent = parts.join('');
  }
  const t0 = performance.now();
  ws.send(kind === 'binary' ? sent.buffer : sent);
  const ev = await next();
  const ms = performance.now() - t0;
  if (ev === 'timeout') return { ok: false, why: `no echo within ${timeoutMs} ms` };
  if (ev === null) {
    return { ok: false, why: `connection closed: ${JSON.stringify(window.__close)}` };
  }
  const d = ev.data;
  if (kind === 'binary') {
    if (!(d instanceof ArrayBuffer)) return { ok: false, why: `binary came back as ${typeof d}` };
    if (d.byteLength !== size) return { ok: false, why: `length ${d.byteLength} != ${size}` };
    const r = new Uint8Array(d);
    for (let i = 0; i < size; i++) {
      if (r[i] !== sent[i]) return { ok: false, why: `first difference at byte ${i}` };
    }
  } else {
    if (typeof d !== 'string') return { ok: false, why: 'text came back as binary' };
    if (d.length !== sent.length) return { ok: false, why: `length ${d.length} != ${sent.length}` };
    if (d !== sent) {
      let i = 0;
      while (d[i] === sent[i]) i++;
      return { ok: false, why: `first difference at char ${i}` };
    }
  }
  return { ok: true, ms };
}

// ---------------------------------------------------------------------------
// Node side
// ---------------------------------------------------------------------------

let browser = null;
let profileDir = null;

async function launchBrowser() {
  if (browser) return browser;
  profileDir = mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, `--disk-cache-dir=${path.join(profileDir, 'cache')}`],
    timeout: T(60000),
    env: { ...process.env, HOME: profileDir, XDG_CONFIG_HOME: profileDir, XDG_CACHE_HOME: profileDir },
  });
  return browser;
}

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (b) await withTimeout(b.close(), 30000, 'browser close').catch(() => {});
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  profileDir = null;
}

/** Start herald (serving examples/) and a page on its origin. */
function useServerAndPage(args) {
  const ctx = { h: null, context: null, page: null, consoleLines: [] };
  before(async () => {
    ctx.h = await startHerald([...(existsSync(EXAMPLES) ? ['--static', EXAMPLES] : []), ...args]);
    const b = await launchBrowser();
    ctx.context = await b.newContext();
    ctx.page = await ctx.context.newPage();
    ctx.page.on('console', (m) => ctx.consoleLines.push(`[${m.type()}] ${m.text()}`));
    ctx.page.on('pageerror', (e) => ctx.consoleLines.push(`[pageerror] ${e.message}`));
    const where = HAVE_INDEX ? `${ctx.h.url}/index.html` : `${ctx.h.url}/health`;
    const resp = await ctx.page.goto(where, { timeout: T(30000) });
    assert.equal(resp.status(), 200, `GET ${where} -> ${resp.status()}`);
  });
  after(async () => {
    if (ctx.context) await ctx.context.close().catch(() => {});
    if (ctx.h) {
      const { code, signal } = await ctx.h.stop();
      if (code !== 0) {
        assert.fail(`herald ${args.join(' ')} exited with code ${code} signal ${signal}\n${ctx.h.tail(60)}`);
      }
    }
  });
  return ctx;
}

/** test() whose failures carry the state and stderr tail of ctx.h and the page console. */
function htest(ctx, name, opts, fn) {
  return test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      annotate(e, ctx.h);
      if (e && typeof e.message === 'string' && ctx.consoleLines.length) {
        e.message += `\n--- page console (tail) ---\n${ctx.consoleLines.slice(-20).join('\n')}`;
      }
      throw e;
    }
  });
}

async function openWs(ctx) {
  const r = await withTimeout(
    ctx.page.evaluate(pageOpen, { url: ctx.h.wsUrl('/ws/echo'), timeoutMs: T(15000) }),
    T(30000), 'WebSocket open in the page');
  assert.ok(!r.error, `page WebSocket: ${r.error}`);
  return r;
}

async function echo(ctx, kind, size, timeoutMs = TEST_TIMEOUT) {
  const r = await withTimeout(
    ctx.page.evaluate(pageEcho, { kind, size, timeoutMs }),
    timeoutMs + T(10000), `${kind} echo of ${size} bytes in the page`);
  assert.ok(r.ok, `browser ${kind} message of ${size} bytes: ${r.why}`);
  return r;
}

after(closeBrowser);

const MODES = [
  { name: 'server defaults (permessage-deflate)', args: [], deflate: true },
  { name: 'server with --websocket.deflate false', args: ['--websocket.deflate', 'false'], deflate: false },
];

for (const mode of MODES) {
  describe(`Chromium WebSocket, ${mode.name}`, { skip: SKIP, timeout: BIG_TIMEOUT * 3 }, () => {
    const ctx = useServerAndPage(mode.args);

    htest(ctx, 'the page loads from herald', { timeout: TEST_TIMEOUT }, async (t) => {
      if (!HAVE_INDEX) {
        t.diagnostic('examples/index.html missing: testing from /health instead');
        return;
      }
      // The demo page connects to /ws/echo by itself and shows its state.
      const state = ctx.page.locator('#state');
      if (await state.count()) {
        await state.filter({ hasText: 'connected' }).waitFor({ timeout: T(20000) });
      }
      const ext = ctx.page.locator('#ext');
      if (await ext.count()) {
        await ctx.page.waitForFunction(() => {
          const e = document.getElementById('ext');
          return e && e.textContent && e.textContent !== '…';
        }, null, { timeout: T(20000) });
        t.diagnostic(`demo page shows extensions: ${await ext.textContent()}`);
      }
    });

    htest(ctx, 'extension negotiation', { timeout: TEST_TIMEOUT }, async () => {
      const r = await openWs(ctx);
      if (mode.deflate) {
        assert.match(r.extensions, /permessage-deflate/,
          `Chromium offers permessage-deflate; server answered extensions "${r.extensions}"`);
      } else {
        assert.equal(r.extensions, '', `deflate is off on the server but extensions are "${r.extensions}"`);
      }
      assert.equal(r.protocol, '');
    });

    htest(ctx, `text echo, sizes ${SIZES.join(', ')}`, { timeout: TEST_TIMEOUT }, async () => {
      await openWs(ctx);
      for (const n of SIZES) await echo(ctx, 'text', n);
    });

    htest(ctx, `ArrayBuffer echo, sizes ${SIZES.join(', ')}`, { timeout: TEST_TIMEOUT }, async () => {
      await openWs(ctx);
      for (const n of SIZES) await echo(ctx, 'binary', n);
    });

    htest(ctx, '16 MiB text (x.repeat) echo', { timeout: BIG_TIMEOUT }, async (t) => {
      await openWs(ctx);
      const a = await echo(ctx, 'text-x', HUGE, BIG_TIMEOUT / 2);
      t.diagnostic(`16 MiB text round trip: ${a.ms.toFixed(0)} ms`);
    });

    // Random bytes do not compress: with permessage-deflate the wire size is a
    // little over 16 MiB, yet the message is exactly websocket.echo_max_message_size.
    htest(ctx, '16 MiB random ArrayBuffer echo', { timeout: BIG_TIMEOUT }, async (t) => {
      await openWs(ctx);
      const b = await echo(ctx, 'binary', HUGE, BIG_TIMEOUT / 2);
      t.diagnostic(`16 MiB binary round trip: ${b.ms.toFixed(0)} ms`);
    });

    if (mode.deflate) {
      htest(ctx, 'screenshot of the page', { timeout: TEST_TIMEOUT }, async (t) => {
        const dir = process.env.HERALD_SCREENSHOT_DIR ||
          (existsSync(path.dirname(HERALD_BIN)) ? path.dirname(HERALD_BIN) : os.tmpdir());
        const file = path.join(dir, 'herald-browser-test.png');
        try {
          await ctx.page.screenshot({ path: file, fullPage: true, timeout: T(20000) });
          t.diagnostic(`screenshot: ${file}`);
        } catch (e) {
          t.diagnostic(`screenshot failed (not essential): ${e.message}`);
        }
      });
    }

    htest(ctx, 'server SIGTERM closes the page WebSocket with 1001', { timeout: TEST_TIMEOUT }, async () => {
      await openWs(ctx);
      await echo(ctx, 'text', 5);
      ctx.h.kill('SIGTERM');
      const handle = await ctx.page.waitForFunction(() => window.__close, null, { timeout: T(20000) });
      const info = await handle.jsonValue();
      assert.equal(info.code, 1001, `expected close 1001 in the page after SIGTERM, got ${JSON.stringify(info)}`);
      assert.equal(info.wasClean, true, `close after SIGTERM was not clean: ${JSON.stringify(info)}`);
      const exit = await withTimeout(ctx.h.exited, T(20000), 'herald exit after SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, `herald exit after SIGTERM: ${JSON.stringify(exit)}`);
    });
  });
}
