// test_pusher_browser.mjs - the Pusher protocol (/app/{key}, docs/pusher.md) in a
// real browser: Debian's headless Chromium driven by npm playwright-core, the
// pages loading pusher-js 8's browser build and Laravel Echo 2's (both copied
// from node_modules into a --static dir, so the pages are same-origin with
// Herald), against the REAL herald binary on loopback. Channel
// authorizations are signed by the `pusher` server library in this process
// (page.exposeFunction), as an app's auth endpoint would.
//
// Covers: pusher-js in the page receiving /api/publish events on a public
// and a private channel; Laravel Echo's Echo.private(...).listen(...) with an
// App\Events\... event name, and Echo.join(...).here/joining/leaving between
// two pages (two users).
//
// Run: node --test tests/integration/test_pusher_browser.mjs
// Env: HERALD_BIN, HERALD_SANITIZE, HERALD_CHROMIUM (default /usr/bin/chromium).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import PusherServer from 'pusher';
import { startHerald, annotate, SLOW, withTimeout, CHROMIUM, CHROMIUM_ARGS, CHROMIUM_SKIP as SKIP } from './lib/herald.mjs';

const require = createRequire(import.meta.url);
const NODE_MODULES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'node_modules');
const T = (ms) => ms * SLOW;
const API_KEY = 'browserkey';
const APP = { appId: '4321', key: 'web-key', secret: 'web-secret' };

// ---- in the page --------------------------------------------------------------------

/** Options every client in the page uses: Herald's address, authorization by window.sign. */
function pageOptions(port) {
  return {
    wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], cluster: 'unused',
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => window.sign(socketId, channelName).then((a) => cb(null, a)),
    },
  };
}

function pagePusher({ port, key, channels }) {
  window.got = [];
  const p = new Pusher(key, window.pageOptions(port));
  window.p = p;
  return new Promise((resolve, reject) => {
    let n = 0;
    for (const name of channels) {
      const ch = p.subscribe(name);
      ch.bind('update', (d) => window.got.push({ channel: name, d }));
      ch.bind('pusher:subscription_succeeded', () => { if (++n === channels.length) resolve(p.connection.socket_id); });
      ch.bind('pusher:subscription_error', (e) => reject(new Error(JSON.stringify(e))));
    }
  });
}

function pageEcho({ port, key, priv, room }) {
  window.log = [];
  const echo = new Echo.default({ broadcaster: 'pusher', key, Pusher, ...window.pageOptions(port) });
  window.echo = echo;
  echo.private(priv).listen('OrderShipped', (e) => window.log.push(['shipped', e]));
  echo.join(room)
    .here((users) => window.log.push(['here', users.map((u) => u.name).sort()]))
    .joining((u) => window.log.push(['joining', u.name]))
    .leaving((u) => window.log.push(['leaving', u.name]));
  return true;
}

// ---- in Node --------------------------------------------------------------------------

describe('pusher-js and Laravel Echo in Chromium', { skip: SKIP, timeout: T(120000) }, () => {
  let herald;
  let browser;
  let profileDir;
  let pageDir;
  const signer = new PusherServer({ ...APP, host: '127.0.0.1' });

  const publish = async (name, data) => {
    const res = await fetch(`${herald.url}/api/publish`, {
      method: 'POST', headers: { Authorization: `apikey ${API_KEY}` },
      body: JSON.stringify({ channel: `$pusher-${APP.appId}:${name}`, data }),
    });
    assert.equal(res.status, 200, await res.text());
  };

  /** A page of user `user` with pusher-js and Echo loaded. */
  async function openPage(user) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.exposeFunction('sign', (socketId, channel) => (channel.startsWith('presence-')
      ? signer.authorizeChannel(socketId, channel, { user_id: user, user_info: { name: user } })
      : signer.authorizeChannel(socketId, channel)));
    await page.goto(`${herald.url}/pusher.html`, { timeout: T(30000) });
    await page.evaluate(`window.pageOptions = ${pageOptions.toString()}`);
    return { page, ctx };
  }

  const waitFor = (page, fn, arg, what) => withTimeout(page.waitForFunction(fn, arg, { timeout: T(10000) }), T(11000), what);

  before(async () => {
    pageDir = mkdtempSync(path.join(os.tmpdir(), 'herald-pusher-page-'));
    // the packages' browser builds (laravel-echo's exports map hides its dist/ from require.resolve)
    const pkgDir = (name) => path.dirname(require.resolve(`${name}/package.json`));
    copyFileSync(path.join(pkgDir('pusher-js'), 'dist/web/pusher.min.js'), path.join(pageDir, 'pusher.min.js'));
    copyFileSync(path.join(NODE_MODULES, 'laravel-echo/dist/echo.iife.js'), path.join(pageDir, 'echo.iife.js'));
    writeFileSync(path.join(pageDir, 'pusher.html'), '<!doctype html><meta charset="utf-8"><title>pusher</title>' +
      '<script src="/pusher.min.js"></script><script src="/echo.iife.js"></script><p>pusher test page</p>\n');
    herald = await startHerald(['--static', pageDir, '--api-key', API_KEY, '--pusher.app.web.app-id', APP.appId,
      '--pusher.app.web.key', APP.key, '--pusher.app.web.secret', APP.secret]);
    profileDir = mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: [...CHROMIUM_ARGS, `--disk-cache-dir=${path.join(profileDir, 'cache')}`],
      timeout: T(60000),
      env: { ...process.env, HOME: profileDir, XDG_CONFIG_HOME: profileDir, XDG_CACHE_HOME: profileDir },
    });
  });

  after(async () => {
    if (browser) await withTimeout(browser.close(), 30000, 'browser close').catch(() => {});
    if (herald) {
      const { code } = await herald.stop();
      assert.equal(code, 0, `herald exit code ${code}\n${herald.tail()}`);
      assert.doesNotMatch(herald.stderr(), /Sanitizer|runtime error/, herald.tail(60));
    }
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    if (pageDir) rmSync(pageDir, { recursive: true, force: true });
  });

  test('pusher-js in the page: public and private channels get /api/publish events', async () => {
    const { page, ctx } = await openPage('ann');
    try {
      const socketId = await withTimeout(page.evaluate(pagePusher,
        { port: herald.port, key: APP.key, channels: ['ticker', 'private-inbox'] }), T(10000), 'subscribed');
      assert.match(socketId, /^\d+\.\d+$/);
      await publish('ticker', { event: 'update', data: { px: 1.5 } });
      await publish('private-inbox', { event: 'update', data: 'hello' });
      await waitFor(page, () => window.got.length === 2, null, 'two events in the page');
      const got = await page.evaluate(() => window.got);
      assert.deepEqual(got, [{ channel: 'ticker', d: { px: 1.5 } }, { channel: 'private-inbox', d: 'hello' }]);
    } catch (e) {
      throw annotate(e, herald);
    } finally {
      await ctx.close();
    }
  });

  test('Laravel Echo: private(...).listen(...), join(...).here/joining/leaving across two pages', async () => {
    const a = await openPage('ann');
    const b = await openPage('bob');
    try {
      const args = { port: herald.port, key: APP.key, priv: 'orders.1', room: 'chat.1' };
      await a.page.evaluate(pageEcho, args);
      await waitFor(a.page, () => window.log.some((l) => l[0] === 'here'), null, 'ann: here');
      await b.page.evaluate(pageEcho, args);
      await waitFor(b.page, () => window.log.some((l) => l[0] === 'here'), null, 'bob: here');
      assert.deepEqual((await b.page.evaluate(() => window.log)).find((l) => l[0] === 'here'), ['here', ['ann', 'bob']]);
      await waitFor(a.page, () => window.log.some((l) => l[0] === 'joining'), null, 'ann sees bob join');
      assert.deepEqual((await a.page.evaluate(() => window.log)).find((l) => l[0] === 'joining'), ['joining', 'bob']);
      // Laravel's event name for App\Events\OrderShipped on the private channel orders.1
      await publish('private-orders.1', { event: 'App\\Events\\OrderShipped', data: { id: 7 } });
      await waitFor(a.page, () => window.log.some((l) => l[0] === 'shipped'), null, 'ann: OrderShipped');
      await waitFor(b.page, () => window.log.some((l) => l[0] === 'shipped'), null, 'bob: OrderShipped');
      assert.deepEqual((await a.page.evaluate(() => window.log)).find((l) => l[0] === 'shipped'), ['shipped', { id: 7 }]);
      await b.ctx.close();
      await waitFor(a.page, () => window.log.some((l) => l[0] === 'leaving'), null, 'ann sees bob leave');
      assert.deepEqual((await a.page.evaluate(() => window.log)).find((l) => l[0] === 'leaving'), ['leaving', 'bob']);
    } catch (e) {
      throw annotate(e, herald);
    } finally {
      await a.ctx.close();
      await b.ctx.close().catch(() => {});
    }
  });
});
