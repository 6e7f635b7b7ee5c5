// test_sdk_browser.mjs - the SDK demos (examples/*.html on the SDK served from
// /sdk/) in headless Debian Chromium driven by playwright-core, against the
// REAL herald binary started like `make run` (--static examples + DEMO_FLAGS):
//
//  - chat: two pages exchange messages, each lists both in presence, the
//    typing indicator of one shows in the other, read receipts come back;
//  - scoreboard: the network of the page is cut (CDP
//    Network.emulateNetworkConditions offline), updates are published through
//    the server API meanwhile, the network comes back: the page shows every
//    update exactly once and the right score;
//  - metrics: the canvas chart receives many points per second;
//  - ticker: one wildcard subscription shows several hierarchical channels.
// A screenshot of each demo is saved in $HERALD_TOOLS_DIR/screenshots/ (the build
// directory under ctest; not committed).
//
// Run: node --test tests/integration/test_sdk_browser.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startHerald, annotate, REPO, HERALD_BIN, SLOW, sleep, withTimeout } from './lib/herald.mjs';
import { apiPublish } from './lib/sdk.mjs';

const T = (ms) => ms * SLOW;
const KEY = 'sdk-browser-key';
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const SKIP = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (set HERALD_CHROMIUM)`;
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage',
];
const SHOTS = path.join(process.env.HERALD_TOOLS_DIR ||
  (existsSync(path.dirname(HERALD_BIN)) ? path.dirname(HERALD_BIN) : os.tmpdir()), 'screenshots');

// The flags `make run` adds for the demos (Makefile DEMO_FLAGS), read from the Makefile itself.
const DEMO_FLAGS = (/^DEMO_FLAGS \?= (.*)$/m.exec(readFileSync(path.join(REPO, 'Makefile'), 'utf8')) || [, ''])[1]
  .split(/\s+/).filter(Boolean);

let h = null;
let browser = null;
let profile = null;
const consoleLines = [];

before(async () => {
  if (SKIP) return;
  h = await startHerald(['--api-key', KEY, '--static', path.join(REPO, 'examples'), ...DEMO_FLAGS]);
  profile = mkdtempSync(path.join(os.tmpdir(), 'herald-sdk-chromium-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true, timeout: T(60000),
    args: [...CHROMIUM_ARGS, `--disk-cache-dir=${path.join(profile, 'cache')}`],
    env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile },
  });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await withTimeout(browser.close(), 30000, 'browser close').catch(() => {});
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (h) {
    const { code } = await h.stop();
    assert.equal(code, 0, `herald exit code ${code}\n${h.tail(120)}`);
  }
});

async function newPage(url) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  const resp = await page.goto(`${h.url}${url}`, { timeout: T(20000) });
  assert.equal(resp.status(), 200, `GET ${url}`);
  await page.locator('#state', { hasText: 'connected' }).waitFor({ timeout: T(15000) });
  return page;
}

async function shot(page, name, t) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: T(20000) });
  t.diagnostic(`screenshot: ${file}`);
}

function btest(name, fn) {
  return test(name, { skip: SKIP, timeout: T(60000) }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      annotate(e, h);
      if (consoleLines.length) e.message += `\n--- page console (tail) ---\n${consoleLines.slice(-25).join('\n')}`;
      throw e;
    }
  });
}

btest('the index page links every demo and the SDK is served from /sdk/', async () => {
  const page = await newPage('/');
  for (const href of ['chat.html', 'metrics.html', 'scoreboard.html', 'ticker.html']) {
    assert.equal(await page.locator(`a[href^="${href}"]`).count(), 1, `link to ${href}`);
  }
  const r = await page.request.get(`${h.url}/sdk/index.js`);
  assert.equal(r.status(), 200);
  assert.match(r.headers()['content-type'], /javascript/);
  assert.match(await r.text(), /export \{ Herald/);
  await page.context().close();
});

btest('chat: two pages exchange messages, see each other in presence, see typing and read receipts', async (t) => {
  const alice = await newPage('/chat.html?name=alice');
  const bob = await newPage('/chat.html?name=bob');
  // presence shows both, on both pages
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => {
      const s = document.getElementById('presence').textContent;
      return s.includes('alice') && s.includes('bob');
    }, null, { timeout: T(15000) });
  }
  // alice writes, bob reads
  await alice.fill('#text', 'hello bob');
  await alice.press('#text', 'Enter');
  await bob.locator('#messages li', { hasText: 'hello bob' }).waitFor({ timeout: T(10000) });
  // bob types: alice sees the indicator
  await bob.locator('#text').pressSequentially('hi al', { delay: 30 });
  await alice.locator('#typing', { hasText: 'bob is typing' }).waitFor({ timeout: T(10000) });
  await bob.press('#text', 'Enter');
  await alice.locator('#messages li', { hasText: 'hi al' }).waitFor({ timeout: T(10000) });
  // bob has read alice's message: a receipt on alice's page
  await alice.locator('#messages li', { hasText: 'hello bob' }).locator('.read', { hasText: 'read by bob' })
    .waitFor({ timeout: T(10000) });
  // a third page joining later gets the history
  const carol = await newPage('/chat.html?name=carol');
  await carol.locator('#messages li', { hasText: 'hello bob' }).waitFor({ timeout: T(10000) });
  await carol.locator('#messages li', { hasText: 'hi al' }).waitFor({ timeout: T(10000) });
  const texts = await carol.$$eval('#messages li', (lis) => lis.map((li) => li.textContent));
  assert.equal(texts.filter((x) => x.includes('hello bob')).length, 1, `history shown once: ${texts}`);
  await shot(alice, 'sdk-chat', t);
  for (const p of [alice, bob, carol]) await p.context().close();
});

btest('chat over the fallbacks: HTTP streaming and long polling pages talk to a WebSocket page', async () => {
  const ws = await newPage('/chat.html?name=wsuser');
  const st = await newPage('/chat.html?name=streamer&transports=http_stream');
  const lp = await newPage('/chat.html?name=poller&transports=long_polling');
  await st.locator('#state', { hasText: 'connected (http_stream)' }).waitFor({ timeout: T(5000) });
  await lp.locator('#state', { hasText: 'connected (long_polling)' }).waitFor({ timeout: T(5000) });
  for (const [from, text] of [[st, 'from the stream'], [lp, 'from the poll'], [ws, 'from the socket']]) {
    await from.fill('#text', text);
    await from.press('#text', 'Enter');
    for (const p of [ws, st, lp]) await p.locator('#messages li', { hasText: text }).waitFor({ timeout: T(10000) });
  }
  await lp.waitForFunction(() => {
    const s = document.getElementById('presence').textContent;
    return ['wsuser', 'streamer', 'poller'].every((n) => s.includes(n));
  }, null, { timeout: T(15000) });
  for (const p of [ws, st, lp]) await p.context().close();
});

btest('chat: a message written offline is delivered once the network is back', async () => {
  const dave = await newPage('/chat.html?name=dave');
  const erin = await newPage('/chat.html?name=erin');
  const cdp = await dave.context().newCDPSession(dave);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await dave.locator('#state', { hasText: /reconnecting|disconnected|connecting/ }).waitFor({ timeout: T(10000) });
  await dave.fill('#text', 'sent while offline');
  await dave.press('#text', 'Enter');
  await dave.locator('#messages li.pending', { hasText: 'sent while offline' }).waitFor({ timeout: T(5000) });
  await sleep(500);
  assert.equal(await erin.locator('#messages li', { hasText: 'sent while offline' }).count(), 0);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await erin.locator('#messages li', { hasText: 'sent while offline' }).waitFor({ timeout: T(15000) });
  await dave.locator('#messages li:not(.pending)', { hasText: 'sent while offline' }).waitFor({ timeout: T(10000) });
  await sleep(300);
  assert.equal(await erin.locator('#messages li', { hasText: 'sent while offline' }).count(), 1, 'exactly once');
  for (const p of [dave, erin]) await p.context().close();
});

btest('scoreboard: every update is shown after the network is cut and restored', async (t) => {
  const page = await newPage('/scoreboard.html');
  await page.waitForFunction(() => window.__scoreboard && window.__herald.getSubscription('scores:final') &&
    window.__herald.getSubscription('scores:final').state === 'subscribed', null, { timeout: T(10000) });
  const expected = { home: 0, away: 0 };
  let seq = 0;
  const send = async (team, points) => {
    expected[team] += points;
    await apiPublish(h, KEY, 'scores:final', { team, points, seq: ++seq });
  };
  for (let i = 0; i < 5; i++) await send(i % 2 ? 'home' : 'away', 1 + (i % 3));
  await page.waitForFunction((n) => window.__scoreboard.seen.length === n, 5, { timeout: T(10000) });

  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.waitForFunction(() => window.__states.includes('connecting') && window.__herald.state !== 'connected',
    null, { timeout: T(10000) });
  for (let i = 0; i < 20; i++) await send(i % 3 ? 'home' : 'away', 1 + (i % 2));
  await sleep(700);
  const during = await page.evaluate(() => window.__scoreboard.seen.length);
  assert.equal(during, 5, 'nothing arrives while offline');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.waitForFunction((n) => window.__scoreboard.seen.length >= n, 25, { timeout: T(20000) });
  for (let i = 0; i < 3; i++) await send('home', 2);
  await page.waitForFunction((n) => window.__scoreboard.seen.length >= n, 28, { timeout: T(10000) });
  await sleep(300);
  const sb = await page.evaluate(() => ({ ...window.__scoreboard, shown: [document.getElementById('home').textContent, document.getElementById('away').textContent] }));
  assert.deepEqual(sb.seen, Array.from({ length: 28 }, (_, k) => k + 1), 'every update once, in order');
  assert.deepEqual(sb.score, expected);
  assert.deepEqual(sb.shown, [String(expected.home), String(expected.away)]);
  assert.equal(sb.failures, 0);
  await shot(page, 'sdk-scoreboard', t);
  await page.context().close();
});

btest('metrics: the chart receives many points per second', async (t) => {
  const page = await newPage('/metrics.html?generate=1');
  await page.waitForFunction(() => window.__metrics.count >= 40, null, { timeout: T(15000) });
  const a = await page.evaluate(() => window.__metrics.count);
  await sleep(1000);
  const b = await page.evaluate(() => window.__metrics.count);
  t.diagnostic(`${b - a} points in 1 s`);
  assert.ok(b - a >= 10, `at least 10 points per second on the chart, got ${b - a}`);
  await shot(page, 'sdk-metrics', t);
  await page.context().close();
});

btest('ticker: one wildcard subscription shows several hierarchical channels', async (t) => {
  const page = await newPage('/ticker.html?generate=1');
  await page.waitForFunction(() => window.__ticker.rows.size >= 6, null, { timeout: T(15000) });
  const chans = await page.$$eval('#rows tr', (trs) => trs.map((tr) => tr.dataset.channel));
  assert.ok(chans.every((c) => c.startsWith('prices.')), chans.join());
  assert.ok(new Set(chans.map((c) => c.split('.')[1])).size >= 2, `several markets: ${chans}`);
  await shot(page, 'sdk-ticker', t);
  // narrow the pattern: only crypto rows remain
  await page.selectOption('#pattern', 'prices.crypto.*');
  await page.waitForFunction(() => window.__ticker.rows.size >= 2, null, { timeout: T(10000) });
  await sleep(500);
  const crypto = await page.$$eval('#rows tr', (trs) => trs.map((tr) => tr.dataset.channel));
  assert.ok(crypto.every((c) => c.startsWith('prices.crypto.')), crypto.join());
  await page.context().close();
});
