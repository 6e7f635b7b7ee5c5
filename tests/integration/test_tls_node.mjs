// test_tls_node.mjs - Herald over TLS with Node's `ws` (wss) and headless
// Chromium (playwright-core, Debian's /usr/bin/chromium): a page loaded over
// https opens wss /ws/echo (permessage-deflate) and an https EventSource on
// /sse, receiving publications made through https /api/publish.
//
// The certificate is generated at test time with `openssl req -x509 -newkey
// ec` into a temporary directory; Node trusts it through the `ca` option,
// Chromium runs with --ignore-certificate-errors.
//
// Run: node --test tests/integration/test_tls_node.mjs

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { startHerald, SLOW, withTimeout } from './lib/herald.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const T = (ms) => ms * SLOW;
const API_KEY = 'tls-node-key';
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const NO_BROWSER = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;

let dir, cert, key, h, base;

function request(method, url, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca: cert, headers: { Authorization: `apikey ${API_KEY}` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), socket: res.socket }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const publish = async (channel, data) => {
  const r = await request('POST', `${base}/api/publish`, JSON.stringify({ channel, data }));
  assert.equal(r.status, 200, r.body);
};

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'herald-tls-node-'));
  const certPath = path.join(dir, 'cert.pem');
  const keyPath = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  cert = readFileSync(certPath);
  key = readFileSync(keyPath);
  const www = path.join(dir, 'www');
  mkdirSync(www);
  writeFileSync(path.join(www, 'index.html'), '<!doctype html><title>tls</title><p>hello</p>\n');
  h = await startHerald(['--tls-cert', certPath, '--tls-key', keyPath, '--api-key', API_KEY, '--static', www]);
  base = `https://localhost:${h.port}`;
});

after(async () => {
  if (h) {
    const { code } = await h.stop();
    assert.equal(code, 0, `herald exit code ${code}\n${h.tail()}`);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Node ws over TLS', () => {
  test('wss /ws/echo: text and binary, permessage-deflate, ALPN http/1.1', { timeout: T(30000) }, async () => {
    const ws = new WebSocket(`wss://localhost:${h.port}/ws/echo`, { ca: cert, perMessageDeflate: true, ALPNProtocols: ['http/1.1'] });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    assert.match(ws.extensions, /permessage-deflate/);
    assert.equal(ws._socket.alpnProtocol, 'http/1.1');
    const recv = () => new Promise((resolve) => ws.once('message', (d, isBinary) => resolve({ d, isBinary })));
    for (const size of [0, 1, 200, 70000, 1 << 20]) {
      const text = 'x'.repeat(size);
      const p = recv();
      ws.send(text);
      const { d, isBinary } = await p;
      assert.equal(isBinary, false);
      assert.equal(d.toString(), text);
    }
    const blob = Buffer.from(Array.from({ length: 100000 }, (_, i) => (i * 7) & 255));
    const p = recv();
    ws.send(blob);
    assert.deepEqual((await p).d, blob);
    const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000);
    assert.equal(await closed, 1000);
  });

  test('wss /ws native protocol receives https API publications', { timeout: T(30000) }, async () => {
    const ws = new WebSocket(`wss://localhost:${h.port}/ws`, { ca: cert });
    const lines = [];
    const waiters = [];
    ws.on('message', (d) => {
      for (const l of d.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      while (waiters.length) waiters.shift()();
    });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const until = async (pred) => {
      const t0 = Date.now();
      while (!pred()) {
        if (Date.now() - t0 > T(10000)) throw new Error(`timeout; got ${JSON.stringify(lines)}`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 100); });
      }
    };
    ws.send(JSON.stringify({ id: 1, connect: {} }) + '\n' + JSON.stringify({ id: 2, subscribe: { channel: 'node-tls' } }));
    await until(() => lines.some((l) => l.id === 2));
    for (let i = 0; i < 20; i++) await publish('node-tls', { i });
    await until(() => lines.filter((l) => l.pub).length === 20);
    assert.deepEqual(lines.filter((l) => l.pub).map((l) => l.pub.data.i), [...Array(20).keys()]);
    ws.close();
  });

  test('certificate rejected without the CA', { timeout: T(30000) }, async () => {
    const ws = new WebSocket(`wss://localhost:${h.port}/ws/echo`);
    const err = await new Promise((resolve) => { ws.once('error', resolve); ws.once('open', () => resolve(null)); });
    assert.ok(err, 'a client without the test CA must not connect');
    assert.match(String(err.code || err.message), /SELF_SIGNED|self.signed|DEPTH_ZERO/i);
  });
});

describe('Chromium over TLS', { skip: NO_BROWSER }, () => {
  let browser, context, profile;
  before(async () => {
    profile = mkdtempSync(path.join(os.tmpdir(), 'herald-tls-chromium-'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
        '--ignore-certificate-errors'],
      timeout: T(60000),
      env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile },
    });
    context = await browser.newContext({ ignoreHTTPSErrors: true });
  });
  after(async () => {
    if (context) await context.close().catch(() => {});
    if (browser) await withTimeout(browser.close(), 30000, 'browser close').catch(() => {});
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  test('page over https, wss echo with deflate, https EventSource', { timeout: T(90000) }, async () => {
    const page = await context.newPage();
    const resp = await page.goto(`${base}/index.html`);
    assert.equal(resp.status(), 200);
    assert.equal(await page.textContent('p'), 'hello');
    assert.equal(await page.evaluate(() => location.protocol), 'https:');

    const echo = await page.evaluate(async (url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send('x'.repeat(100000) + 'é');
      ws.onmessage = (ev) => { resolve({ len: ev.data.length, tail: ev.data.slice(-1), ext: ws.extensions }); ws.close(); };
      ws.onerror = () => resolve({ error: true });
    }), `wss://localhost:${h.port}/ws/echo`);
    assert.equal(echo.error, undefined, 'wss from the page failed');
    assert.equal(echo.len, 100001);
    assert.equal(echo.tail, 'é');
    assert.match(echo.ext, /permessage-deflate/);

    await page.evaluate(() => {
      window.__sse = { open: false, data: [], errors: 0 };
      const es = new EventSource('/sse?channel=browser-tls');
      es.onopen = () => { window.__sse.open = true; };
      es.onmessage = (ev) => window.__sse.data.push(JSON.parse(ev.data));
      es.onerror = () => { window.__sse.errors++; };
    });
    await page.waitForFunction(() => window.__sse.open, null, { timeout: T(10000) });
    for (let i = 0; i < 10; i++) await publish('browser-tls', { i });
    await page.waitForFunction(() => window.__sse.data.length === 10, null, { timeout: T(10000) });
    const sse = await page.evaluate(() => window.__sse);
    assert.deepEqual(sse.data, [...Array(10).keys()].map((i) => ({ i })));
    assert.equal(sse.errors, 0);
    await page.close();
  });
});
