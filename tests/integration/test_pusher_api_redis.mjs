// test_pusher_api_redis.mjs - the Pusher HTTP API and webhooks on two herald
// nodes sharing a real redis-server (docs/pusher.md: publishes are the
// engine's, user_count is the engine's presence, occupancy is cluster-wide):
// an event triggered through node 0's API reaches pusher-js on node 1 (minus
// the excluded socket_id there), node 0 counts the users of a presence channel
// whose members are on both nodes, terminate_connections sent to node 0 closes
// the user's connection on node 1, and channel_occupied / channel_vacated of a
// channel subscribed on both nodes reach the app's webhook once each.
//
// Run: node --test tests/integration/test_pusher_api_redis.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import PusherJS from 'pusher-js';
import PusherServer from 'pusher';
import { startHerald, startRedis, REDIS_BIN, annotate, SLOW, sleep } from './lib/herald.mjs';
import { pusherOptions, signedAuth, unrefCloseTimers } from './lib/pusher.mjs';

unrefCloseTimers();

const T = (ms) => ms * SLOW;
const APP = { appId: '88', key: 'rkey', secret: 'rsecret' };

async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

describe('the HTTP API across two nodes on Redis', { skip: !REDIS_BIN && 'redis-server is not installed' }, () => {
  let redis, hook;
  const nodes = [];
  const clients = [];
  const hooks = [];
  const lib = new PusherServer({ ...APP });

  before(async () => {
    hook = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => { raw += c; });
      req.on('end', () => { hooks.push(...JSON.parse(raw).events); res.writeHead(200).end('{}'); });
    });
    await new Promise((r) => hook.listen(0, '127.0.0.1', r));
    redis = await startRedis();
    const args = ['--engine', 'redis', '--redis', `127.0.0.1:${redis.port}`,
      `--pusher.app.main.app_id=${APP.appId}`, `--pusher.app.main.key=${APP.key}`,
      `--pusher.app.main.secret=${APP.secret}`, '--pusher.app.main.user_authentication=true',
      `--pusher.app.main.webhook_url=http://127.0.0.1:${hook.address().port}/hook`,
      '--pusher.app.main.webhook_events=channel_occupied,channel_vacated', '--webhook.batch_max_delay=50ms'];
    nodes.push(await startHerald(args), await startHerald(args));
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    for (const n of nodes) await n.stop();
    redis?.stop();
    hook?.close();
  });

  function server(i) {
    return new PusherServer({ ...APP, host: '127.0.0.1', port: String(nodes[i].port), useTLS: false });
  }

  async function connect(i, user) {
    const c = new PusherJS(APP.key, pusherOptions(nodes[i].port, signedAuth(lib, user)));
    clients.push(c);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`connect to node ${i}`)), T(5000));
      c.connection.bind('connected', () => { clearTimeout(t); resolve(); });
    });
    return c;
  }

  async function subscribed(c, name) {
    const ch = c.subscribe(name);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`subscribe ${name}`)), T(5000));
      ch.bind('pusher:subscription_succeeded', () => { clearTimeout(t); resolve(); });
    });
    return ch;
  }

  test('trigger, user_count, terminate and occupancy webhooks cross nodes', { timeout: T(40000) }, async () => {
    try {
      const a = await connect(1, 'amy'), b = await connect(1, 'ben'), c = await connect(0, 'cid');
      const chA = await subscribed(a, 'presence-hall'), chB = await subscribed(b, 'presence-hall');
      await subscribed(c, 'presence-hall');
      const gotA = [], gotB = [];
      chA.bind('news', (d) => gotA.push(d));
      chB.bind('news', (d) => gotB.push(d));
      await server(0).trigger('presence-hall', 'news', { n: 1 }, { socket_id: a.connection.socket_id });
      await until(() => gotB.length === 1, T(5000), 'node 0\'s event on node 1');
      await sleep(T(300));
      assert.deepEqual(gotA, [], 'the excluded socket on the other node');
      const one = await (await server(0).get({ path: '/channels/presence-hall', params: { info: 'user_count' } })).json();
      assert.equal(one.user_count, 3, 'members of both nodes');
      // terminate through node 0: ben's connection on node 1 goes, amy's stays
      const signed = new Promise((r) => b.bind('pusher:signin_success', r));
      b.signin();
      await signed;
      await sleep(T(200));
      const closed = new Promise((r) => b.connection.bind('state_change', (s) => { if (s.current !== 'connected') r(); }));
      await server(0).terminateUserConnections('ben');
      await closed;
      await sleep(T(300));
      assert.equal(a.connection.state, 'connected');
      a.unsubscribe('presence-hall');
      c.unsubscribe('presence-hall');
      await until(() => hooks.some((e) => e.name === 'channel_vacated' && e.channel === 'presence-hall'), T(8000),
        'channel_vacated once every node left');
      await sleep(T(500));
      const hall = hooks.filter((e) => e.channel === 'presence-hall').map((e) => e.name);
      assert.deepEqual(hall, ['channel_occupied', 'channel_vacated'], 'once each, cluster-wide');
    } catch (e) {
      throw annotate(e, nodes[0]);
    }
  });
});
