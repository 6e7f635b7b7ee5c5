// test_http2_browser.mjs - HTTP/2 in a real browser: Debian's headless Chromium
// (npm playwright-core) loads a page from Herald over TLS (a self-signed
// certificate made here, trusted by this browser only through
// --ignore-certificate-errors) and opens 10 EventSources and 3 WebSockets on
// the page's own origin. Over HTTP/1.1 that is past the browser's 6
// connections per origin; over HTTP/2 every stream shares one TCP connection,
// and the WebSockets ride on it by RFC 8441's extended CONNECT. Asserts: the
// page came over h2, every EventSource and WebSocket receives its
// publication, and the server's metrics count ONE http2 TCP connection
// carrying 10 SSE streams and 3 WebSockets.
//
// Run: node --test tests/integration/test_http2_browser.mjs
// Env: HERALD_BIN, HERALD_SANITIZE, HERALD_CHROMIUM (default /usr/bin/chromium).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startHerald, annotate, SLOW, withTimeout } from './lib/herald.mjs';

const T = (ms) => ms * SLOW;
const API_KEY = 'h2browserkey';
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage', '--ignore-certificate-errors',
];
const SKIP = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (set HERALD_CHROMIUM)`;

/** In the page: 10 EventSources on sse-0..9 and 3 native WebSockets on ws-0..2. */
function pageOpen({ apiKey }) {
  const s = { sse: {}, ws: {}, ready: 0 };
  window.__s = s;
  for (let i = 0; i < 10; i++) {
    const es = new EventSource(`/sse?channel=sse-${i}`);
    es.addEventListener('connected', () => { s.ready++; });
    es.onmessage = (e) => { s.sse[i] = JSON.parse(e.data); };
  }
  for (let i = 0; i < 3; i++) {
    const ws = new WebSocket(`wss://${location.host}/ws`);
    ws.onopen = () => {
      ws.send(JSON.stringify({ id: 1, connect: {} }) + '\n' +
              JSON.stringify({ id: 2, subscribe: { channel: `ws-${i}` } }));
    };
    ws.onmessage = (e) => {
      for (const line of String(e.data).split('\n')) {
        if (!line) continue;
        const m = JSON.parse(line);
        if (m.id === 2) s.ready++;
        if (m.pub) s.ws[i] = m.pub.data;
      }
    };
  }
  window.__publish = async (channel, data) => {
    const r = await fetch('/api/publish', {
      method: 'POST',
      headers: { Authorization: `apikey ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel, data }),
    });
    return r.status;
  };
  return true;
}

describe('HTTP/2 in Chromium', { skip: SKIP }, () => {
  let H, browser, dir;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'herald-h2-browser-'));
    const cert = path.join(dir, 'c.crt'); const key = path.join(dir, 'c.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const pages = path.join(dir, 'www');
    execFileSync('mkdir', ['-p', pages]);
    writeFileSync(path.join(pages, 'index.html'), '<!doctype html><title>h2</title><p>h2 page</p>\n');
    H = await startHerald(['--tls-cert', cert, '--tls-key', key, '--static', pages, '--api-key', API_KEY]);
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, timeout: T(60000),
      args: [...CHROMIUM_ARGS, `--disk-cache-dir=${path.join(dir, 'cache')}`],
      env: { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir, XDG_CACHE_HOME: dir },
    });
  });

  after(async () => {
    if (browser) await withTimeout(browser.close(), 30000, 'browser close').catch(() => {});
    if (H) {
      const { code } = await H.stop();
      assert.equal(code, 0, `herald exit code ${code}\n${H.tail()}`);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('10 EventSources and 3 WebSockets share one HTTP/2 connection', { timeout: T(60000) }, async () => {
    try {
      const page = await browser.newPage();
      const base = `https://localhost:${H.port}`;
      const resp = await page.goto(`${base}/index.html`, { timeout: T(30000) });
      assert.equal(resp.status(), 200);
      const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
      assert.equal(proto, 'h2');
      await page.evaluate(pageOpen, { apiKey: API_KEY });
      await page.waitForFunction(() => window.__s.ready === 13, null, { timeout: T(20000) });
      const metrics = await page.evaluate(async () => (await fetch('/metrics')).text());
      const gauge = (t) => Number((new RegExp(`herald_connections_by_transport\\{transport="${t}",tls="true"\\} (\\d+)`)
        .exec(metrics) || [])[1]);
      assert.equal(gauge('http2'), 1, metrics);
      assert.equal(gauge('sse'), 10, metrics);
      assert.equal(gauge('websocket'), 3, metrics);
      // (an idle socket Chromium opens ahead of need may count as http: it carries nothing)
      for (let i = 0; i < 10; i++) assert.equal(await page.evaluate(([c, d]) => window.__publish(c, d), [`sse-${i}`, { sse: i }]), 200);
      for (let i = 0; i < 3; i++) assert.equal(await page.evaluate(([c, d]) => window.__publish(c, d), [`ws-${i}`, { ws: i }]), 200);
      await page.waitForFunction(() => Object.keys(window.__s.sse).length === 10 && Object.keys(window.__s.ws).length === 3,
        null, { timeout: T(10000) }).catch(() => {}); // the asserts below say what is missing
      const s = await page.evaluate(() => window.__s);
      for (let i = 0; i < 10; i++) assert.deepEqual(s.sse[i], { sse: i });
      for (let i = 0; i < 3; i++) assert.deepEqual(s.ws[i], { ws: i });
      await page.close();
    } catch (e) {
      throw annotate(e, H);
    }
  });
});
