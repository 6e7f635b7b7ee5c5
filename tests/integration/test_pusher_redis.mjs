// test_pusher_redis.mjs - the Pusher protocol on two Herald nodes sharing a
// real redis-server (docs/pusher.md: Pusher channels are Herald channels,
// so presence and fan-out are the Redis engine's): pusher-js clients on
// different nodes see each other in a presence channel (the members hash on
// subscribe, member_added, member_removed; one member per user_id even with a
// connection on each node), a client event crosses nodes, and /api/publish
// on one node reaches a subscriber of the other.
//
// Run: node --test tests/integration/test_pusher_redis.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import PusherJS from 'pusher-js';
import PusherServer from 'pusher';
import { startHerald, annotate, SLOW, withTimeout, sleep } from './lib/herald.mjs';
import { pusherOptions, signedAuth } from './lib/pusher.mjs';

const T = (ms) => ms * SLOW;
const API_KEY = 'pusherkey';
const APP = { appId: '77', key: 'redis-key', secret: 'redis-secret' };

function redisBin() {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (fs.existsSync(p)) return p;
  try { return execFileSync('which', ['redis-server']).toString().trim() || null; } catch { return null; }
}
const REDIS = redisBin();

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

async function until(pred, what, ms = T(8000)) {
  await withTimeout((async () => { while (!pred()) await sleep(10); })(), ms, what);
}

describe('Pusher presence across two nodes on Redis', { skip: !REDIS && 'redis-server is not installed' }, () => {
  let redis;
  let dir;
  const nodes = [];
  const clients = [];
  const signer = new PusherServer({ ...APP, host: '127.0.0.1' });

  /** pusher-js on node i, presence channels signed for user `user`. */
  async function connect(i, user) {
    const p = new PusherJS(APP.key, pusherOptions(nodes[i].port, signedAuth(signer, user, { node: i })));
    clients.push(p);
    await withTimeout(new Promise((r) => p.connection.bind('connected', r)), T(5000), `connected to node ${i}`);
    return p;
  }

  function subscribe(p, name) {
    const ch = p.subscribe(name);
    return withTimeout(new Promise((resolve, reject) => {
      ch.bind('pusher:subscription_succeeded', () => resolve(ch));
      ch.bind('pusher:subscription_error', (e) => reject(new Error(JSON.stringify(e))));
    }), T(5000), `subscribe ${name}`);
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-pusher-redis-'));
    const port = await freePort();
    redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--protected-mode', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    let ready = false;
    for (let i = 0; i < 200 && !ready; i++) {
      ready = await new Promise((r) => {
        const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); });
        s.on('error', () => r(false));
      });
      if (!ready) await sleep(25);
    }
    assert.ok(ready, 'redis-server answers');
    const args = ['--api-key', API_KEY, '--engine', 'redis', '--redis', `127.0.0.1:${port}`,
      '--pusher.app.main.app-id', APP.appId, '--pusher.app.main.key', APP.key,
      '--pusher.app.main.secret', APP.secret, '--pusher.app.main.client-events', 'true'];
    nodes.push(await startHerald(args), await startHerald(args));
  });

  after(async () => {
    for (const p of clients) p.disconnect();
    for (const n of nodes) {
      const exit = await n.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, n.tail(60));
      assert.doesNotMatch(n.stderr(), /Sanitizer|runtime error/, n.tail(60));
    }
    redis?.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('members, member_added / member_removed, client events and API publications cross nodes', async () => {
    try {
      const name = `presence-x${process.pid}`;
      const alice = await connect(0, 'alice');
      const chA = await subscribe(alice, name);
      const added = [];
      const removed = [];
      chA.bind('pusher:member_added', (m) => added.push(m.id));
      chA.bind('pusher:member_removed', (m) => removed.push(m.id));
      const bob = await connect(1, 'bob');
      const chB = await subscribe(bob, name);
      assert.equal(chB.members.count, 2);
      assert.deepEqual(chB.members.get('alice').info, { node: 0 });
      await until(() => added.includes('bob'), 'alice sees bob join (node 1 -> node 0)');
      // bob on node 0 too: still one member
      const bob0 = await connect(0, 'bob');
      const chB0 = await subscribe(bob0, name);
      assert.equal(chB0.members.count, 2);
      // a client event from node 1 reaches node 0, not its sender
      const atA = [];
      const atB = [];
      chA.bind('client-wave', (d) => atA.push(d));
      chB.bind('client-wave', (d) => atB.push(d));
      chB.trigger('client-wave', { from: 'bob' });
      await until(() => atA.length === 1, 'the client event on node 0');
      assert.deepEqual(atA[0], { from: 'bob' });
      // the API of node 0 reaches bob on node 1
      const got = [];
      chB.bind('news', (d) => got.push(d));
      const res = await fetch(`${nodes[0].url}/api/publish`, {
        method: 'POST', headers: { Authorization: `apikey ${API_KEY}` },
        body: JSON.stringify({ channel: `$pusher-${APP.appId}:${name}`, data: { event: 'news', data: { n: 1 } } }),
      });
      assert.equal(res.status, 200);
      await until(() => got.length === 1, 'the API publication on node 1');
      assert.equal(atB.length, 0, 'not echoed to the sender');
      // bob's node-1 connection goes: he is still on node 0, so no member_removed
      bob.disconnect();
      await sleep(T(500));
      assert.deepEqual(removed, []);
      bob0.disconnect();
      await until(() => removed.includes('bob'), 'alice sees bob leave');
      assert.equal(added.filter((x) => x === 'bob').length, 1);
      assert.equal(chA.members.count, 1);
      // the recovery extension over Redis (an asynchronous history read): published on node 0 while
      // away, replayed on node 1 in order, publications racing the read after it
      const feed = `feed${process.pid}`;
      const pub = (i) => fetch(`${nodes[0].url}/api/publish`, {
        method: 'POST', headers: { Authorization: `apikey ${API_KEY}` },
        body: JSON.stringify({ channel: `$pusher-${APP.appId}:${feed}`, data: { event: 'tick', data: { i } } }),
      }).then((r) => r.json());
      const first = await pub(1);
      for (let i = 2; i <= 4; i++) await pub(i);
      const ws = new WebSocket(`ws://127.0.0.1:${nodes[1].port}/app/${APP.key}?protocol=7`);
      const msgs = [];
      ws.on('message', (m) => msgs.push(JSON.parse(m.toString())));
      await until(() => msgs.length === 1, 'established');
      ws.send(JSON.stringify({ event: 'pusher:subscribe',
        data: { channel: feed, herald_since: { offset: 1, epoch: first.epoch } } }));
      const racing = [pub(5), pub(6)];
      await Promise.all(racing);
      await until(() => msgs.filter((m) => m.event === 'tick').length === 5, 'ticks 2..6');
      const ticks = msgs.filter((m) => m.event === 'tick').map((m) => m.herald.offset);
      assert.deepEqual(ticks, [2, 3, 4, 5, 6]);
      const done = msgs.find((m) => m.event === 'herald:subscribed');
      assert.equal(done.data.recovered, true);
      ws.close();
    } catch (e) {
      throw annotate(e, nodes[0]);
    }
  });
});
