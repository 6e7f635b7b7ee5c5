// test_sse_browser.mjs - Herald's Server-Sent Events (/sse) against a real browser:
// Debian's headless Chromium driven by npm playwright-core, using the page's own
// native `new EventSource(...)`, against the REAL herald binary on loopback.
//
// Three servers, each also serving a blank page from a temporary --static dir:
//   A  the stream server (sse.allowed_origins = P's origin, retry 200 ms),
//   P  another origin (another port) whose page opens streams on A and B,
//   B  a stream server with the default policy (same origin only).
// Covers: live delivery on a same-origin page (onmessage, lastEventId), the
// browser's automatic resume with Last-Event-ID after the server ends the stream
// (API disconnect, three times, publishing while it is away): nothing lost,
// nothing twice, in order; a recovery_failed event the page can listen to; a
// cross-origin page allowed by the list (live, and resuming across origins); and
// a foreign origin refused (403: the EventSource fails for good and never
// connects).
//
// Run: node --test tests/integration/test_sse_browser.mjs
// Env: HERALD_BIN, HERALD_SANITIZE, HERALD_CHROMIUM (default /usr/bin/chromium).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startHerald, annotate, SLOW, withTimeout, sleep } from './lib/herald.mjs';

const T = (ms) => ms * SLOW;
const TEST_TIMEOUT = T(60000);
const API_KEY = 'browserkey';
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage',
];
const SKIP = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (set HERALD_CHROMIUM)`;

let seq = 0;
const chan = (prefix = 'web') => `${prefix}:${process.pid}-${++seq}`;

// ---------------------------------------------------------------------------
// Code that runs inside the page (serialised by page.evaluate).
// ---------------------------------------------------------------------------

/** Open window.__es on url, recording everything in window.__s. */
function pageOpen({ url }) {
  if (window.__es) window.__es.close();
  const s = { messages: [], connected: [], others: [], errors: 0, opens: 0, states: [] };
  window.__s = s;
  const es = new EventSource(url);
  window.__es = es;
  es.onopen = () => { s.opens++; };
  es.onerror = () => { s.errors++; s.states.push(es.readyState); };
  es.onmessage = (e) => { s.messages.push({ data: e.data, lastEventId: e.lastEventId }); };
  es.addEventListener('connected', (e) => { s.connected.push(JSON.parse(e.data).client); });
  for (const type of ['disconnect', 'recovery_failed']) {
    es.addEventListener(type, (e) => { s.others.push({ type, data: JSON.parse(e.data) }); });
  }
  return true;
}

function pageState() {
  const s = window.__s;
  return { ...s, readyState: window.__es ? window.__es.readyState : -1 };
}

// ---------------------------------------------------------------------------
// Node side
// ---------------------------------------------------------------------------

describe('Chromium EventSource', { skip: SKIP, timeout: T(300000) }, () => {
  let browser = null;
  let profileDir = null;
  let pageDir = null;
  let A = null; let P = null; let B = null;
  let context = null;
  const consoleLines = [];

  const api = async (method, body) => {
    const res = await fetch(`${A.url}/api/${method}`, {
      method: 'POST', headers: { Authorization: `apikey ${API_KEY}` }, body: JSON.stringify(body),
    });
    const json = await res.json();
    assert.equal(res.status, 200, `${method}: ${JSON.stringify(json)}`);
    return json;
  };
  const publish = (channel, data) => api('publish', { channel, data });

  /** A page on server h's origin. */
  async function pageOn(h) {
    const page = await context.newPage();
    page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
    const resp = await page.goto(`${h.url}/sse.html`, { timeout: T(30000) });
    assert.equal(resp.status(), 200);
    return page;
  }

  const state = (page) => page.evaluate(pageState);

  async function until(page, pred, what, ms = T(15000)) {
    const deadline = Date.now() + ms;
    let s;
    for (;;) {
      s = await state(page);
      if (pred(s)) return s;
      if (Date.now() > deadline) {
        throw new Error(`${what}: timed out; page state ${JSON.stringify({ ...s, messages: s.messages.length })}`);
      }
      await sleep(20);
    }
  }

  function ptest(name, fn) {
    return test(name, { timeout: TEST_TIMEOUT }, async () => {
      try {
        await fn();
      } catch (e) {
        annotate(e, A);
        e.message += `\n--- page console (tail) ---\n${consoleLines.slice(-20).join('\n')}`;
        throw e;
      }
    });
  }

  before(async () => {
    pageDir = mkdtempSync(path.join(os.tmpdir(), 'herald-sse-page-'));
    writeFileSync(path.join(pageDir, 'sse.html'), '<!doctype html><meta charset="utf-8"><title>sse</title><p>sse test page</p>\n');
    P = await startHerald(['--static', pageDir]);
    A = await startHerald(['--static', pageDir, '--api-key', API_KEY, '--sse.retry', '200ms',
      '--sse.allowed-origins', P.url, '--namespace.short.history-size', '2']);
    B = await startHerald(['--static', pageDir]);
    profileDir = mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, `--disk-cache-dir=${path.join(profileDir, 'cache')}`],
      timeout: T(60000),
      env: { ...process.env, HOME: profileDir, XDG_CONFIG_HOME: profileDir, XDG_CACHE_HOME: profileDir },
    });
    context = await browser.newContext();
  });

  after(async () => {
    if (context) await context.close().catch(() => {});
    if (browser) await withTimeout(browser.close(), 30000, 'browser close').catch(() => {});
    for (const h of [A, P, B]) {
      if (!h) continue;
      const { code } = await h.stop();
      assert.equal(code, 0, `herald exit code ${code}\n${h.tail()}`);
    }
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    if (pageDir) rmSync(pageDir, { recursive: true, force: true });
  });

  ptest('same-origin page: live delivery in order', async () => {
    const page = await pageOn(A);
    const ch = chan();
    await page.evaluate(pageOpen, { url: `/sse?channel=${encodeURIComponent(ch)}` });
    await until(page, (s) => s.connected.length === 1, 'connected event');
    for (let i = 0; i < 30; i++) await publish(ch, { i, text: `é ${i}` });
    const s = await until(page, (st) => st.messages.length === 30, '30 messages');
    assert.deepEqual(s.messages.map((m) => JSON.parse(m.data)), [...Array(30).keys()].map((i) => ({ i, text: `é ${i}` })));
    s.messages.forEach((m, i) => assert.match(m.lastEventId, new RegExp(`^[0-9a-f]{16}:${i + 1}$`)));
    assert.equal(s.errors, 0);
    assert.equal(s.readyState, 1);
    await page.close();
  });

  ptest('automatic resume with Last-Event-ID after the server ends the stream', async () => {
    const page = await pageOn(A);
    const a = chan(); const b = chan();
    await page.evaluate(pageOpen, { url: `/sse?channel=${encodeURIComponent(a)}&channel=${encodeURIComponent(b)}` });
    await until(page, (s) => s.connected.length === 1, 'connected event');
    let n = 0;
    const pub = async (k) => { for (let i = 0; i < k; i++, n++) await publish(n % 2 ? b : a, { n }); };
    await pub(6);
    for (let cycle = 1; cycle <= 3; cycle++) {
      let s = await until(page, (st) => st.messages.length === n, `cycle ${cycle}: ${n} messages`);
      const errors = s.errors;
      await api('disconnect', { client: s.connected.at(-1) });
      await until(page, (st) => st.errors > errors, `cycle ${cycle}: the browser saw the end`);
      await pub(10); // while it waits to reconnect (retry: 200 ms)
      s = await until(page, (st) => st.connected.length === cycle + 1, `cycle ${cycle}: reconnected`);
      assert.equal(s.readyState, 1);
      await pub(4);
    }
    const s = await until(page, (st) => st.messages.length === n, `${n} messages at the end`);
    await sleep(T(300));
    const got = (await state(page)).messages.map((m) => JSON.parse(m.data).n);
    const all = [...Array(n).keys()];
    assert.equal(got.length, n, 'nothing twice');
    assert.deepEqual(got.filter((k) => k % 2 === 0), all.filter((k) => k % 2 === 0), `channel a in order: ${got}`);
    assert.deepEqual(got.filter((k) => k % 2 === 1), all.filter((k) => k % 2 === 1), `channel b in order: ${got}`);
    assert.deepEqual(s.others.filter((o) => o.type === 'disconnect').map((o) => o.data.reconnect), [true, true, true]);
    assert.equal(s.others.filter((o) => o.type === 'recovery_failed').length, 0);
    await page.close();
  });

  ptest('recovery_failed reaches the page when the history is gone', async () => {
    const page = await pageOn(A);
    const ch = chan('short'); // keeps 2 publications
    await page.evaluate(pageOpen, { url: `/sse?channel=${encodeURIComponent(ch)}` });
    let s = await until(page, (st) => st.connected.length === 1, 'connected event');
    await publish(ch, 'seen');
    await until(page, (st) => st.messages.length === 1, 'first message');
    await api('disconnect', { client: s.connected[0] });
    await until(page, (st) => st.errors > 0, 'the browser saw the end');
    await api('batch', { commands: [1, 2, 3, 4].map((i) => ({ method: 'publish', params: { channel: ch, data: i } })) });
    s = await until(page, (st) => st.others.some((o) => o.type === 'recovery_failed'), 'recovery_failed');
    const rf = s.others.find((o) => o.type === 'recovery_failed');
    assert.equal(rf.data.channel, ch);
    assert.equal(rf.data.offset, 5);
    await publish(ch, 'live');
    await until(page, (st) => st.messages.at(-1)?.data === '"live"', 'live after recovery_failed');
    await page.close();
  });

  ptest('cross-origin page allowed by sse.allowed_origins', async () => {
    const page = await pageOn(P);
    const ch = chan();
    await page.evaluate(pageOpen, { url: `${A.url}/sse?channel=${encodeURIComponent(ch)}` });
    await until(page, (s) => s.connected.length === 1, 'connected event across origins');
    await publish(ch, 'across');
    let s = await until(page, (st) => st.messages.length === 1 && st.messages[0].data === '"across"', 'the message');
    // and it resumes across origins too (Last-Event-ID on a CORS request)
    await api('disconnect', { client: s.connected[0] });
    await until(page, (st) => st.errors > 0, 'the browser saw the end');
    await publish(ch, 'while away');
    s = await until(page, (st) => st.connected.length === 2 && st.messages.length === 2, 'resumed across origins');
    assert.equal(s.messages[1].data, '"while away"');
    await page.close();
  });

  ptest('a foreign origin is refused: the EventSource fails and does not retry', async () => {
    const page = await pageOn(P);
    const ch = chan();
    await page.evaluate(pageOpen, { url: `${B.url}/sse?channel=${encodeURIComponent(ch)}` });
    const s = await until(page, (st) => st.readyState === 2, 'EventSource CLOSED');
    assert.equal(s.connected.length, 0);
    assert.equal(s.opens, 0);
    await sleep(T(500));
    const later = await state(page);
    assert.equal(later.errors, 1, 'no retry after the 403');
    // what the browser got: 403 for that Origin (the page cannot read it; Node can)
    const res = await fetch(`${B.url}/sse?channel=${encodeURIComponent(ch)}`, { headers: { Origin: P.url } });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /origin not allowed/);
    await page.close();
  });
});
