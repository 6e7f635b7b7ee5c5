// test_backend_example.mjs - the example backend (examples/backend/server.mjs).
//
// Alone (always run): each hook's answer to the request bodies of
// docs/backend.md, every answer checked by Herald's own parser
// (tests/tools/proxy_answer_check), the static hook key, webhook signatures
// (good: logged; bad, stale, missing: 401) and the JSON-lines store surviving
// a restart.
//
// With herald, started exactly as `make run-backend` starts them (the same
// script, scripts/run-backend.sh, with the Makefile's DEMO_FLAGS), then used as
// a user would: log in at the backend (a session cookie), connect a real
// WebSocket client (`ws`) with that cookie, publish into chat:lobby and see the
// message come back rewritten by the backend (the user's name, its time), be
// refused chat:private as an uninvited user, read chat.history over RPC, see
// the backend log a signed webhook, and stop both processes with one signal.
// Then the chat demo in headless Chromium the same way: log in on the
// backend's page, land on the chat (cookie sent to herald, another port of the
// same host), send a message, see it rendered with the backend's name, and a
// second user load it as history over RPC; without a cookie the page shows the
// login link. Skipped, saying why, while the binary has no proxy hooks or
// webhooks (and the browser part without Chromium).
//
// Run: node --test tests/integration/test_backend_example.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { REPO, HERALD_BIN, SLOW, heraldAvailable, withTimeout, sleep } from './lib/herald.mjs';

const T = (ms) => ms * SLOW;
const DEMO_FLAGS = (/^DEMO_FLAGS \?= (.*)$/m.exec(readFileSync(path.join(REPO, 'Makefile'), 'utf8')) || [, ''])[1];
// the options the example needs from herald; missing ones mean the hooks are not merged yet
const NEEDED = ['proxy.connect_url', 'proxy.publish_url', 'proxy.subscribe_url', 'proxy.rpc_url', 'proxy.headers',
  'proxy_publish', 'proxy_subscribe', 'webhook.url', 'webhook.secret'];

function missingOptions() {
  if (!heraldAvailable()) return [`the herald binary (${HERALD_BIN})`];
  const ref = execFileSync(HERALD_BIN, ['config-reference'], { encoding: 'utf8' });
  return NEEDED.filter((o) => !ref.includes(o));
}
const missing = missingOptions();
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const skip = missing.length ? `proxy hooks / webhooks not in this herald yet (no ${missing.join(', ')})` : false;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

/** scripts/run-backend.sh on free ports; output() is both processes' stdout + stderr. */
async function runBackend(env = {}) {
  const [hp, bp] = [await freePort(), await freePort()];
  const proc = spawn(path.join(REPO, 'scripts', 'run-backend.sh'), ['--workers', '2'], {
    env: { ...process.env, HERALD_BIN, LISTEN: `127.0.0.1:${hp}`, BACKEND_LISTEN: `127.0.0.1:${bp}`, DEMO_FLAGS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so a failed test still kills herald and the backend
  });
  let out = '';
  proc.stdout.on('data', (c) => { out += c; });
  proc.stderr.on('data', (c) => { out += c; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  process.once('exit', () => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } });
  const h = { proc, exited, output: () => out, herald: `127.0.0.1:${hp}`, backend: `http://127.0.0.1:${bp}` };
  await waitFor(h, () => /listening on http/.test(out) && /example backend on/.test(out), T(10000), 'both processes up')
    .catch((e) => { process.kill(-proc.pid, 'SIGKILL'); throw withOutput(e, h); });
  return h;
}

/** The example backend alone on a free port. */
async function startBackendAlone(env) {
  const port = await freePort();
  const proc = spawn(process.execPath, [path.join(REPO, 'examples', 'backend', 'server.mjs')], {
    env: { ...process.env, BACKEND_LISTEN: `127.0.0.1:${port}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (c) => { out += c; });
  proc.stderr.on('data', (c) => { out += c; });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  process.once('exit', () => proc.kill('SIGKILL'));
  const b = { proc, exited, output: () => out, backend: `http://127.0.0.1:${port}` };
  await waitFor(b, () => /example backend on/.test(out), T(10000), 'backend up')
    .catch((e) => { proc.kill('SIGKILL'); throw withOutput(e, b); });
  return b;
}

function withOutput(e, h) {
  e.message += `\n--- output ---\n${h.output().slice(-6000)}`;
  return e;
}

async function waitFor(h, cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`); // the callers add the output
    await sleep(25);
  }
}

const CHECKER = path.join(process.env.HERALD_TOOLS_DIR || path.dirname(HERALD_BIN), 'proxy_answer_check');

/** POST a hook body as Herald does; the answer must pass Herald's parser as `want` ("result", "error 1000"). */
async function hook(b, name, body, want, key = 'k3y') {
  const res = await fetch(`${b.backend}/herald/${name}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Herald-Key': key }, body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${name}: ${text}`);
  if (existsSync(CHECKER)) {
    const r = spawnSync(CHECKER, [name, text], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), want, `Herald's parser on the ${name} answer ${text}`);
  }
  return JSON.parse(text);
}

function signed(secret, body, t = Math.floor(Date.now() / 1000)) {
  return `t=${t},v1=${crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

async function login(h, name) {
  const res = await fetch(`${h.backend}/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }),
  });
  assert.equal(res.status, 200);
  const sid = /sid=([^;]+)/.exec(res.headers.get('set-cookie') || '')?.[1];
  assert.ok(sid, 'the login sets the sid cookie');
  return { ...(await res.json()), cookie: `sid=${sid}` };
}

/** A native-protocol client over `ws`: call() resolves with the reply, pushes are collected. */
async function nativeClient(h, cookie) {
  const ws = new WebSocket(`ws://${h.herald}/ws`, { headers: cookie ? { Cookie: cookie } : {} });
  const c = { ws, pushes: [], waiting: new Map(), nextId: 1, closed: null };
  ws.on('message', (buf) => {
    for (const line of buf.toString().split('\n').filter(Boolean)) {
      const m = JSON.parse(line);
      if (m.id && c.waiting.has(m.id)) { c.waiting.get(m.id)(m); c.waiting.delete(m.id); } else c.pushes.push(m);
    }
  });
  c.closedP = new Promise((resolve) => ws.once('close', (code, reason) => resolve((c.closed = { code, reason: String(reason) }))));
  c.call = (method, params) => {
    const id = c.nextId++;
    ws.send(JSON.stringify({ id, [method]: params }));
    return withTimeout(new Promise((resolve) => c.waiting.set(id, resolve)), T(5000), `${method} reply`);
  };
  await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), T(5000), 'ws open');
  return c;
}

test('the example backend alone: every hook answer as docs/backend.md says, hook key, webhook signatures, store', { timeout: T(30000) }, async (t) => {
  if (!existsSync(CHECKER)) t.diagnostic(`no ${CHECKER}: answers not checked by Herald's parser`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-backend-'));
  const env = { HOOK_KEY: 'k3y', WEBHOOK_SECRET: 'wh-secret', STORE_FILE: path.join(dir, 'chat.jsonl'), PRIVATE_USERS: 'ann' };
  let b = await startBackendAlone(env);
  try {
    const ann = await login(b, 'Ann');
    const carl = await login(b, 'Carl');
    const base = { client: 'c1', transport: 'websocket', protocol: 'json' };
    const conn = await hook(b, 'connect', { ...base, remote_addr: '127.0.0.1', headers: { Cookie: `x=1; ${ann.cookie}`, Origin: 'http://a' } }, 'result');
    const { expire_at: exp, ...rest } = conn.result;
    assert.deepEqual(rest, { user: ann.user, info: { name: 'Ann' }, data: { user: ann.user, name: 'Ann' } });
    assert.ok(Math.abs(exp - (Date.now() / 1000 + 600)) < 60, `expire_at ${exp}: SESSION_TTL_S (600) ahead`);
    await hook(b, 'connect', { ...base, remote_addr: '127.0.0.1', headers: {} }, 'error 1000');
    await hook(b, 'connect', { ...base, remote_addr: '127.0.0.1', headers: { Cookie: 'sid=forged' } }, 'error 1000');
    await hook(b, 'refresh', { ...base, user: ann.user }, 'result');
    await hook(b, 'subscribe', { ...base, user: ann.user, channel: 'chat:private' }, 'result');
    await hook(b, 'subscribe', { ...base, user: carl.user, channel: 'chat:private' }, 'error 1403');
    await hook(b, 'subscribe', { ...base, user: carl.user, channel: 'chat:lobby' }, 'result');
    const pub = await hook(b, 'publish', { ...base, user: carl.user, channel: 'chat:lobby', data: { type: 'msg', id: 'x', name: 'Ann', text: 'hi' } }, 'result');
    assert.equal(pub.result.data.name, 'Carl', 'the name is the backend\'s');
    await hook(b, 'publish', { ...base, user: carl.user, channel: 'chat:lobby', data: { type: 'msg', text: 'x'.repeat(1001) } }, 'error 1400');
    await hook(b, 'publish', { ...base, user: '', channel: 'chat:lobby', data: { type: 'msg', text: 'hi' } }, 'error 1000');
    await hook(b, 'rpc', { ...base, user: carl.user, method: 'chat.users' }, 'result');
    await hook(b, 'rpc', { ...base, user: carl.user, method: 'nope', data: {} }, 'error 1404');
    // Herald authenticates itself with the static header; anyone else is refused
    const stranger = await fetch(`${b.backend}/herald/connect`, { method: 'POST', body: '{}', headers: { 'X-Herald-Key': 'guess' } });
    assert.equal(stranger.status, 401);
    // webhooks: a good signature is logged, a bad, stale or missing one is 401
    const body = JSON.stringify({ events: [{ event: 'client_connected', id: 'n-0', time_ms: Date.now(), client: 'c1', user: carl.user }] });
    const post = (sig) => fetch(`${b.backend}/herald/webhook`, { method: 'POST', body, headers: sig ? { 'X-Herald-Signature': sig } : {} });
    assert.equal((await post(signed('wh-secret', body))).status, 200);
    assert.match(b.output(), /webhook client_connected \{"id":"n-0","client":"c1"/);
    assert.equal((await post(signed('wh-secret', body))).status, 200, 'a batch sent again (at least once) is accepted');
    assert.match(b.output(), /webhook client_connected n-0: seen already, skipped/);
    assert.equal((await post(signed('wrong', body))).status, 401);
    assert.equal((await post(signed('wh-secret', body, Math.floor(Date.now() / 1000) - 3600))).status, 401);
    assert.equal((await post('')).status, 401);
    const users = await hook(b, 'rpc', { ...base, user: carl.user, method: 'chat.users' }, 'result');
    assert.deepEqual(users.result.data.users.find((u) => u.name === 'Carl').online, true);
    // logged out: the refresh hook ends the user's connections
    const out = await fetch(`${b.backend}/logout`, { method: 'POST', headers: { Cookie: carl.cookie } });
    assert.equal(out.status, 200);
    assert.deepEqual((await hook(b, 'refresh', { ...base, user: carl.user }, 'result')).result, { expired: true });
    // the store survives a restart
    b.proc.kill('SIGTERM');
    await b.exited;
    b = await startBackendAlone(env);
    const hist = await hook(b, 'rpc', { ...base, user: '1', method: 'chat.history', data: { channel: 'chat:lobby' } }, 'result');
    assert.deepEqual(hist.result.data.messages.map((m) => [m.name, m.text]), [['Carl', 'hi']]);
  } catch (e) {
    throw withOutput(e, b);
  } finally {
    b.proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the example backend with herald, as make run-backend starts them', { skip, timeout: T(45000) }, async () => {
  // connections expire 5 s after connect: herald asks the refresh hook 3 s before (3 x proxy.refresh_timeout)
  const h = await runBackend({ SESSION_TTL_S: '5' });
  try {
    // no cookie: the connect hook refuses ("log in first", no anonymous users)
    const anon = await nativeClient(h, '');
    const refused = await anon.call('connect', {});
    assert.equal(refused.error?.code, 1000, JSON.stringify(refused));
    assert.equal(refused.error?.message, 'log in first');
    anon.ws.terminate();

    const ann = await login(h, 'Ann');
    const a = await nativeClient(h, ann.cookie);
    const hello = await a.call('connect', {});
    assert.ok(hello.result, JSON.stringify(hello));
    assert.deepEqual(hello.result.data, { user: ann.user, name: 'Ann' }, 'the connect hook named the user');

    assert.ok((await a.call('subscribe', { channel: 'chat:lobby' })).result);
    const before = Date.now();
    const pub = await a.call('publish', { channel: 'chat:lobby', data: { type: 'msg', id: 'm1', name: 'Mallory', text: ' hello ' } });
    assert.ok(pub.result, JSON.stringify(pub));
    await waitFor(h, () => a.pushes.some((p) => p.pub), T(5000), 'own publication delivered');
    const got = a.pushes.find((p) => p.pub).pub;
    assert.equal(got.channel, 'chat:lobby');
    assert.equal(got.data.name, 'Ann', 'the backend rewrote the name (the client cannot choose it)');
    assert.equal(got.data.text, 'hello');
    assert.equal(got.data.id, 'm1');
    assert.ok(got.data.time_ms >= before - 1000 && got.data.time_ms <= Date.now() + 1000, 'the backend stamped its time');

    // an empty message is refused by the publish hook with its own code
    const empty = await a.call('publish', { channel: 'chat:lobby', data: { type: 'msg', text: '  ' } });
    assert.equal(empty.error?.code, 1400, JSON.stringify(empty));

    // chat:private: Ann is invited (PRIVATE_USERS), Carl is not
    assert.ok((await a.call('subscribe', { channel: 'chat:private' })).result);
    const carl = await login(h, 'Carl');
    const c = await nativeClient(h, carl.cookie);
    assert.ok((await c.call('connect', {})).result);
    const denied = await c.call('subscribe', { channel: 'chat:private' });
    assert.equal(denied.error?.code, 1403, JSON.stringify(denied));
    assert.equal(denied.error?.message, 'private room');

    // the RPCs: the stored message, and who is here
    const hist = await c.call('rpc', { method: 'chat.history', data: { channel: 'chat:lobby', limit: 10 } });
    assert.ok(hist.result, JSON.stringify(hist));
    const msgs = hist.result.data.messages;
    assert.deepEqual(msgs.map((m) => [m.name, m.text]), [['Ann', 'hello']]);
    const unknown = await c.call('rpc', { method: 'chat.nope', data: {} });
    assert.equal(unknown.error?.code, 1404, JSON.stringify(unknown));

    // webhooks: signed (the backend answers 401 to a bad signature and logs it), logged one line per event
    await waitFor(h, () => /webhook client_connected/.test(h.output()), T(10000), 'client_connected webhook logged');
    assert.doesNotMatch(h.output(), /bad or missing signature/);
    const users = await c.call('rpc', { method: 'chat.users', data: {} });
    assert.deepEqual(users.result.data.users.map((u) => u.name).sort(), ['Ann', 'Carl']);

    // the refresh hook extends Ann's and Carl's connections (still logged in)
    await waitFor(h, () => /refresh user \d+ still logged in/.test(h.output()), T(8000), 'refresh hook called');
    assert.ok((await a.call('ping', {})).result, 'still connected after the refresh');

    // one line per call in the backend's log
    for (const re of [/connect no session \(no cookie\) -> error 1000/, /connect sid -> user \d+ \(Ann\)/,
      /publish chat:lobby: stored #1 from Ann: "hello"/, /subscribe chat:private: Carl not invited -> error 1403/,
      /rpc chat.history chat:lobby: 1 messages/]) assert.match(h.output(), re);
    a.ws.terminate();
    c.ws.terminate();

    // one TERM (Ctrl-C's effect on the script) stops herald and the backend together
    h.proc.kill('SIGTERM');
    await withTimeout(h.exited, T(15000), 'run-backend.sh exits');
    assert.doesNotMatch(h.output(), /Sanitizer|runtime error:/, 'herald stopped clean (ASan/UBSan builds)');
    const sock = net.connect(Number(h.herald.split(':')[1]), '127.0.0.1');
    const refusedConn = await new Promise((resolve) => { sock.once('error', () => resolve(true)); sock.once('connect', () => { sock.destroy(); resolve(false); }); });
    assert.ok(refusedConn, 'herald stopped with the script');
    await assert.rejects(fetch(`${h.backend}/`), 'the backend stopped with the script');
  } catch (e) {
    throw withOutput(e, h);
  } finally {
    try { process.kill(-h.proc.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

async function browserPage(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  page.logs = logs;
  await page.goto(url, { timeout: T(20000) });
  return page;
}

async function loginPage(browser, h, name) {
  const page = await browserPage(browser, `${h.backend}/`);
  await page.fill('input[name=name]', name);
  await Promise.all([page.waitForURL(/chat\.html\?backend=/, { timeout: T(15000) }), page.click('button[type=submit]')]);
  await page.locator('#state', { hasText: 'connected' }).waitFor({ timeout: T(15000) });
  await page.locator('#me', { hasText: name }).waitFor({ timeout: T(10000) });
  return page;
}

test('the chat demo through the example backend, in Chromium', {
  skip: skip || (existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (set HERALD_CHROMIUM)`), timeout: T(60000),
}, async () => {
  const { chromium } = await import('playwright-core');
  const h = await runBackend();
  const profile = mkdtempSync(path.join(os.tmpdir(), 'herald-backend-chromium-'));
  let browser = null;
  const pages = [];
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, timeout: T(60000),
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'],
      env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile },
    });
    // no session: the connect hook's error 1000 and a link to log in
    const anon = await browserPage(browser, `http://${h.herald}/chat.html?backend=${encodeURIComponent(h.backend)}`);
    pages.push(anon);
    await anon.locator('#state', { hasText: 'log in first' }).waitFor({ timeout: T(15000) });
    assert.equal(await anon.locator(`#state a[href="${h.backend}/"]`).count(), 1);

    const ann = await loginPage(browser, h, 'Ann');
    pages.push(ann);
    await ann.fill('#text', 'hello from the browser');
    await ann.click('button[type=submit]');
    const line = ann.locator('#messages li:not(.pending)', { hasText: 'hello from the browser' });
    await line.waitFor({ timeout: T(10000) });
    assert.equal(await line.locator('.who').textContent(), 'Ann');

    const bob = await loginPage(browser, h, 'Bob');
    pages.push(bob);
    await bob.locator('#messages li', { hasText: 'hello from the browser' }).waitFor({ timeout: T(10000) });
    assert.match(h.output(), /rpc chat.history chat:lobby: 1 messages/);
  } catch (e) {
    for (const p of pages) if (p.logs.length) e.message += `\n--- page console ---\n${p.logs.slice(-15).join('\n')}`;
    throw withOutput(e, h);
  } finally {
    if (browser) await withTimeout(browser.close(), 30000, 'browser close').catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    try { process.kill(-h.proc.pid, 'SIGTERM'); } catch { /* already gone */ }
  }
});
