// test_sdk_tokens.mjs - token handling of the JavaScript SDK against the REAL
// herald binary (started with --token-hmac-secret; tokens are HS256 JWTs
// signed here with node:crypto): expiry -> the server's refresh push ->
// getToken() -> refresh -> the connection goes on; an expired token at connect
// (109, close 3005) -> getToken() -> connected; an invalid token (101, close
// 3500) -> the client stops with an error and does not retry.
//
// Run: node --test tests/integration/test_sdk_tokens.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, annotate, SLOW, sleep } from './lib/herald.mjs';
import { loadSdk, apiPublish, collect, until, signHs256 } from './lib/sdk.mjs';

const T = (ms) => ms * SLOW;
const KEY = 'sdk-test-key';
const SECRET = 'sdk-test-secret-0123456789abcdef0123456789';
const { Herald, DisconnectError } = await loadSdk();
const clients = [];
after(() => { for (const c of clients) c.disconnect(); });
const now = () => Math.floor(Date.now() / 1000);
const token = (sub, ttl, secret = SECRET) => signHs256(secret, { sub, exp: now() + ttl, iat: now() - 1 });

async function withServer(fn) {
  const h = await startHerald(['--api-key', KEY, '--token-hmac-secret', SECRET, '--auth.leeway', '0',
    '--auth.refresh-grace', '4s']);
  try {
    return await fn(h);
  } catch (e) {
    throw annotate(e, h);
  } finally {
    for (const c of clients.splice(0)) c.disconnect();
    await h.stop();
  }
}

function newClient(h, opts) {
  const c = new Herald(h.url, { WebSocket, transports: ['websocket'], minReconnectDelay: 50, maxReconnectDelay: 300, ...opts });
  clients.push(c);
  return c;
}

test('expiry: refresh push -> getToken -> refresh, same connection goes on', { timeout: T(30000) }, async () => {
  await withServer(async (h) => {
    const asked = [];
    let first = true;
    const c = newClient(h, {
      refreshAhead: 0, // rely on the server's refresh push
      getToken: async (ctx) => {
        asked.push(ctx.reason);
        const t = first ? token('alice', 2) : token('alice', 3600);
        first = false;
        return t;
      },
    });
    const disconnected = collect(c, 'disconnected');
    const refreshed = collect(c, 'refreshed');
    c.connect();
    await c.ready(T(5000));
    assert.equal(c.user, 'alice');
    const id = c.clientId;
    const sub = c.subscribe('news');
    const got = collect(sub, 'publication');
    await sub.ready(T(5000));
    await until(() => refreshed.length === 1, T(8000), 'refresh after the refresh push');
    assert.deepEqual(asked, ['connect', 'refresh push']);
    assert.equal(refreshed[0].expires, true);
    assert.ok(refreshed[0].ttl > 3000, `new ttl ${refreshed[0].ttl}`);
    await sleep(4500); // past the refresh grace: a connection that had not refreshed would be gone
    assert.equal(disconnected.length, 0, `no disconnect: ${JSON.stringify(disconnected)}`);
    assert.equal(c.clientId, id, 'same connection');
    await apiPublish(h, KEY, 'news', 'still here');
    await until(() => got.length === 1, T(5000), 'publication after the refresh');
  });
});

test('without a refresh the server closes 3005; the SDK gets a new token and reconnects', { timeout: T(30000) }, async () => {
  await withServer(async (h) => {
    let n = 0;
    const c = newClient(h, { refreshAhead: 0, getToken: async () => (++n === 2 ? 'not-a-token-refresh-fails' : token('bob', n === 1 ? 1 : 3600)) });
    const disconnected = collect(c, 'disconnected');
    c.connect();
    await c.ready(T(5000));
    const id = c.clientId;
    await until(() => disconnected.length === 1, T(10000), '3005 after the grace');
    assert.equal(disconnected[0].code, 3005);
    assert.equal(disconnected[0].reconnect, true);
    await until(() => c.state === 'connected' && c.clientId !== id, T(5000), 'reconnected with a new token');
    assert.equal(c.user, 'bob');
  });
});

test('expired token at connect: 109 / 3005, getToken, connected', { timeout: T(20000) }, async () => {
  await withServer(async (h) => {
    const asked = [];
    const c = newClient(h, { token: token('carol', -10), getToken: async (ctx) => { asked.push(ctx.reason); return token('carol', 3600); } });
    const errors = collect(c, 'error');
    c.connect();
    await c.ready(T(5000));
    assert.equal(c.user, 'carol');
    assert.deepEqual(asked, ['connect']);
    assert.ok(errors.some((e) => e.code === 109), 'the 109 was reported');
  });
});

test('invalid token: 101 / 3500 stops the client with an error, no retry', { timeout: T(20000) }, async () => {
  await withServer(async (h) => {
    const c = newClient(h, { token: token('mallory', 3600, 'another-secret-another-secret-another-secret') });
    const errors = collect(c, 'error');
    const connecting = collect(c, 'connecting');
    const disconnected = collect(c, 'disconnected');
    c.connect();
    await until(() => c.state === 'disconnected' && disconnected.length === 1, T(5000), 'stopped');
    assert.equal(disconnected[0].code, 3500);
    assert.equal(disconnected[0].reconnect, false);
    const reply = errors.find((e) => e.code === 101);
    assert.ok(reply, `error 101 reported: ${errors.map((e) => e.code)}`);
    assert.match(reply.message, /unauthorized/);
    assert.ok(errors.some((e) => e instanceof DisconnectError && e.code === 3500 && !e.temporary));
    const attempts = connecting.length;
    await sleep(700);
    assert.equal(connecting.length, attempts, 'no retry with a token that does not verify');
  });
});
