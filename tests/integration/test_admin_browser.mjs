// test_admin_browser.mjs - the admin UI (/admin/, docs/operations.md "Admin
// UI") in a real browser: Debian's headless Chromium driven by npm
// playwright-core, against two REAL herald nodes sharing a real redis-server
// (the Redis engine), each with --admin.
//
// Covers: a wrong password refused in the form; logging in through the form;
// both nodes listed in the node table (their $admin:stats snapshots arrive
// over the native WebSocket protocol, through Redis); the connections chart
// moving when the test opens WebSockets; looking a channel up (subscribers,
// presence, history shown); publishing from the UI to a separate Node `ws`
// client; disconnecting a user from the UI (that client closed); a
// cross-origin page's form POST refused (403, nothing published); the page
// on a 390×844 phone viewport without horizontal scroll; and a stopped node
// marked stale.
// With ADMIN_SCREENSHOT=<file.png> it also writes the screenshot used in
// docs/img/admin.png.
//
// Run: node --test tests/integration/test_admin_browser.mjs
// Env: HERALD_BIN, HERALD_SANITIZE, HERALD_CHROMIUM (default /usr/bin/chromium).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { startHerald, annotate, SLOW, withTimeout, sleep } from './lib/herald.mjs';
import { signHs256 } from './lib/sdk.mjs';

const T = (ms) => ms * SLOW;
const PASSWORD = 'admin-browser-password';
const SECRET = 'admin-browser-secret-0123456789abcdefghijkl';
const API_KEY = 'adminbrowserkey';
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const REDIS = '/usr/bin/redis-server';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage',
];
const SKIP = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM} (set HERALD_CHROMIUM)`
  : !existsSync(REDIS) ? `no redis-server at ${REDIS}` : false;
const chan = (n) => `adm:${process.pid}-${n}`;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function startRedis() {
  const port = await freePort();
  const proc = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  const deadline = Date.now() + T(10000);
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return { proc, port };
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await sleep(50);
  }
}

/** A native-protocol client (Node `ws`) connected as user, subscribed to channel. */
async function nativeClient(h, user, channel) {
  const ws = new WebSocket(h.wsUrl('/ws'));
  const c = { ws, pubs: [], closed: null, replies: [] };
  c.closedP = new Promise((resolve) => ws.on('close', (code) => { c.closed = code; resolve(code); }));
  ws.on('message', (data) => {
    for (const line of String(data).split('\n').filter(Boolean)) {
      const m = JSON.parse(line);
      if (m.pub) c.pubs.push(m.pub); else c.replies.push(m);
    }
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const token = signHs256(SECRET, { sub: user, exp: Math.floor(Date.now() / 1000) + 3600 });
  ws.send(JSON.stringify({ id: 1, connect: { token } }) + '\n' +
          (channel ? JSON.stringify({ id: 2, subscribe: { channel } }) : ''));
  const want = channel ? 2 : 1;
  const deadline = Date.now() + T(10000);
  while (c.replies.length < want) {
    if (Date.now() > deadline) throw new Error(`no replies: ${JSON.stringify(c.replies)}`);
    await sleep(20);
  }
  for (const r of c.replies) assert.ok(r.result, JSON.stringify(r));
  return c;
}

async function until(pred, what, ms = T(15000)) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: timed out`);
    await sleep(100);
  }
}

describe('admin UI in Chromium', { skip: SKIP, timeout: T(120000) }, () => {
  let browser = null; let context = null; let page = null;
  let redis = null; let A = null; let B = null; let P = null;
  let profileDir = null; let pageDir = null;
  const consoleLines = [];
  const clients = [];

  const api = async (h, method, body) => {
    const res = await fetch(`${h.url}/api/${method}`, {
      method: 'POST', headers: { Authorization: `apikey ${API_KEY}` }, body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };

  async function login(p, password) {
    await p.fill('#password', password);
    await p.click('#login-form button[type=submit]');
  }

  before(async () => {
    redis = await startRedis();
    const node = ['--engine', 'redis', '--redis', `127.0.0.1:${redis.port}`, '--admin', '--admin.password', PASSWORD,
      '--admin.stats-interval', '300ms', '--api-key', API_KEY, '--token-hmac-secret', SECRET,
      '--channels.presence', 'true', '--channels.history-size', '20'];
    A = await startHerald(node);
    B = await startHerald(node);
    pageDir = mkdtempSync(path.join(os.tmpdir(), 'herald-admin-page-'));
    writeFileSync(path.join(pageDir, 'index.html'), '<!doctype html><title>other origin</title>');
    P = await startHerald(['--static', pageDir]);
    profileDir = mkdtempSync(path.join(os.tmpdir(), 'herald-admin-chromium-'));
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, timeout: T(60000),
      args: [...CHROMIUM_ARGS, `--disk-cache-dir=${path.join(profileDir, 'cache')}`],
      env: { ...process.env, HOME: profileDir, XDG_CONFIG_HOME: profileDir, XDG_CACHE_HOME: profileDir },
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
    const resp = await page.goto(`${A.url}/admin/`, { timeout: T(30000) });
    assert.equal(resp.status(), 200);
  });

  after(async () => {
    for (const c of clients) c.ws.terminate();
    if (context) await context.close().catch(() => {});
    if (browser) await withTimeout(browser.close(), 30000, 'browser close').catch(() => {});
    for (const h of [A, B, P]) if (h) await h.stop();
    if (redis) redis.proc.kill('SIGKILL');
    for (const d of [profileDir, pageDir]) if (d) rmSync(d, { recursive: true, force: true });
    if (consoleLines.some((l) => l.startsWith('[pageerror]'))) console.log(consoleLines.join('\n'));
  });

  const wrap = (fn) => async () => {
    try { await fn(); } catch (e) { throw annotate(annotate(e, A), B); }
  };

  test('a wrong password is refused in the form', wrap(async () => {
    await login(page, 'not the password');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('wrong password'),
      null, { timeout: T(10000) });
    assert.equal(await page.isHidden('#app-view'), true);
  }));

  test('logging in shows both nodes, live', wrap(async () => {
    await login(page, PASSWORD);
    await page.waitForSelector('#app-view:not([hidden])', { timeout: T(10000) });
    await page.waitForFunction(() => document.getElementById('status').textContent === 'live', null,
      { timeout: T(10000) });
    const rows = await until(async () => {
      const r = await page.$$eval('#nodes tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
      return r.length === 2 && r.every((cells) => cells[1] === 'up') ? r : null;
    }, 'two nodes in the node table');
    assert.equal(rows.length, 2);
    for (const cells of rows) assert.equal(cells[5], 'redis');
  }));

  test('the connections chart moves when clients connect', wrap(async () => {
    const now = async () => Number(await page.textContent('#conns-now'));
    const before = await now();
    const N = 6;
    for (let i = 0; i < N; i++) clients.push(await nativeClient(i % 2 ? A : B, `watcher${i}`, chan('busy')));
    const after = await until(async () => { const n = await now(); return n >= before + N ? n : null; },
      `connections from ${before} to at least ${before + N}`);
    assert.ok(after >= before + N);
    // the busiest channels list the channel the watchers joined (subscribers summed over both nodes)
    await until(async () => (await page.textContent('#top')).includes(`${chan('busy')} — ${N} subscribers`),
      'the busy channel in the busiest list');
    // the chart has drawn something: the canvas is not blank
    const inked = await page.$eval('#chart-conns', (cv) => {
      const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
      return n;
    });
    assert.ok(inked > 100, `canvas pixels drawn: ${inked}`);
  }));

  test('looking a channel up shows subscribers, presence and history', wrap(async () => {
    const ch = chan('lookup');
    const carol = await nativeClient(A, 'carol', ch);
    clients.push(carol);
    for (const text of ['one', 'two']) assert.equal((await api(A, 'publish', { channel: ch, data: { text } })).status, 200);
    await page.fill('#lookup-channel', ch);
    await page.click('#lookup-form button');
    await page.waitForSelector('#lookup-history', { timeout: T(10000) });
    assert.match(await page.textContent('#lookup-subscribers'), /subscribers: 1$/);
    assert.match(await page.textContent('#lookup-presence'), /carol/);
    const hist = await page.textContent('#lookup-history');
    assert.match(hist, /"text":"two"/);
    assert.match(hist, /"text":"one"/);
  }));

  test('publishing from the UI reaches a separate client', wrap(async () => {
    const ch = chan('pub');
    const dave = await nativeClient(B, 'dave', ch); // on the other node: through Redis
    clients.push(dave);
    await page.fill('#publish-channel', ch);
    await page.fill('#publish-data', '{"text":"hello from the admin UI"}');
    await page.click('#publish-form button');
    await page.waitForFunction(() => /published at offset \d+/.test(document.getElementById('publish-result').textContent),
      null, { timeout: T(10000) });
    await until(() => dave.pubs.length >= 1, 'the publication at the client');
    assert.deepEqual(dave.pubs[0].data, { text: 'hello from the admin UI' });
  }));

  test('disconnecting a user from the UI closes its client', wrap(async () => {
    const eve = await nativeClient(B, 'eve', null);
    clients.push(eve);
    await page.fill('#disconnect-user', 'eve');
    await page.click('#disconnect-form button');
    const code = await withTimeout(eve.closedP, T(10000), 'eve closed');
    assert.equal(code, 3000);
    // the page reports it once the API's answer is in (which may come after the close)
    await page.waitForFunction(() => /disconnected eve/.test(document.getElementById('disconnect-result').textContent),
      null, { timeout: T(10000) });
  }));

  test("a cross-origin page's form POST is refused", wrap(async () => {
    const ch = chan('csrf');
    const other = await context.newPage(); // same browser: the admin cookie is in the jar
    await other.goto(`${P.url}/index.html`);
    const answer = other.waitForResponse((r) => r.url().includes('/admin/api/publish'), { timeout: T(10000) });
    await other.evaluate(({ url, ch }) => {
      const f = document.createElement('form');
      f.method = 'POST';
      f.action = url;
      f.enctype = 'text/plain';
      const i = document.createElement('input');
      i.name = `{"channel":"${ch}","data":1,"x":"`;
      i.value = '"}';
      f.appendChild(i);
      document.body.appendChild(f);
      f.submit();
    }, { url: `${A.url}/admin/api/publish`, ch });
    const r = await answer;
    assert.equal(r.status(), 403);
    const hist = await api(A, 'history', { channel: ch });
    assert.equal(hist.status, 200);
    assert.deepEqual(hist.body.publications, []);
    await other.close();
  }));

  test('a phone screen (390×844) shows the page without horizontal scroll', wrap(async () => {
    if (process.env.ADMIN_SCREENSHOT) await page.screenshot({ path: process.env.ADMIN_SCREENSHOT, fullPage: true });
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    await p.goto(`${A.url}/admin/`);
    const loginWidth = await p.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(loginWidth[0] <= loginWidth[1], `login page: ${loginWidth}`);
    await login(p, PASSWORD);
    await p.waitForSelector('#app-view:not([hidden])', { timeout: T(10000) });
    await p.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 2, null, { timeout: T(10000) });
    const [scroll, inner] = await p.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= inner, `scrollWidth ${scroll} > viewport ${inner}`);
    const box = await p.$eval('#chart-conns', (cv) => cv.getBoundingClientRect().right);
    assert.ok(box <= inner, `chart right edge ${box}`);
    await phone.close();
  }));

  test('a node whose snapshots stop is marked stale', wrap(async () => {
    await B.stop();
    await until(async () => {
      const states = await page.$$eval('#nodes tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent));
      return states.length === 2 && states.filter((s) => s === 'stale').length === 1;
    }, 'one node stale', T(10000));
  }));
});
