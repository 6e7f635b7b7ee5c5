#!/usr/bin/env node
// backend-hooks.mjs - what the proxy hooks cost (docs/benchmarks.md, "Backend
// hooks"; issue 14 item 5). Starts a minimal backend (this file with
// --serve-backend: a Node http server that answers every hook at once, in its
// own process) and one herald, then measures, interleaved in rounds so that
// the shared machine's noise falls on both sides alike:
//
//   connect   native-protocol WebSocket connections per second, each one
//             opened, `connect` sent, its reply awaited, then closed:
//             with a JWT in `connect` (no hook: proxy.connect_with_token is
//             false) against with only a Cookie header (the connect hook)
//   publish   one client's publish -> own delivery round trip, one publish in
//             flight, p50/p99: on `bench` (no hook) against on `chat:bench`
//             (namespace.chat.proxy_publish = true)
//
//   node bench/backend-hooks.mjs [--herald build/herald] [--workers 1]
//     [--connections 1000] [--concurrency 32] [--publishes 1000] [--rounds 3] [--json FILE]
//
// The generator is Node (`ws` from tests/node_modules): on a 2-core machine it
// competes with herald and the backend for the CPU, so the numbers are lower
// bounds, comparable with each other (the same generator on both sides).

import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');

function args(argv) {
  const o = { herald: path.join(REPO, 'build', 'herald'), workers: 1, connections: 1000, concurrency: 32,
    publishes: 1000, rounds: 3, json: '', serveBackend: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    if (typeof o[k] === 'boolean') o[k] = true;
    else o[k] = typeof o[k] === 'number' ? Number(argv[++i]) : argv[++i];
  }
  return o;
}

// --- the backend: every hook answered at once ----------------------------------

function serveBackend() {
  let n = 0;
  const answers = {
    '/connect': () => ({ result: { user: `u${++n}` } }),
    '/publish': () => ({ result: {} }),
  };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = answers[req.url];
      const body = JSON.stringify(a ? a() : {});
      res.writeHead(a ? 200 : 404, { 'Content-Type': 'application/json', 'Content-Length': body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, '127.0.0.1', () => console.log(`backend ${server.address().port}`));
}

// --- helpers ---------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

/** Spawn cmd; resolves with {proc, port} once its output matches re (the port is the first group),
 * or, with re null, once GET healthUrl answers 200 (herald prints nothing at --log-level warn). */
function start(cmd, argv, re, healthUrl = '') {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let done = false;
  return new Promise((resolve, reject) => {
    const finish = (err, port) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { proc.kill('SIGKILL'); reject(err); } else resolve({ proc, port });
    };
    const timer = setTimeout(() => finish(new Error(`${cmd} did not start within 10 s:\n${out}`)), 10000);
    const on = (c) => {
      out += c;
      const m = re && re.exec(out);
      if (m) finish(null, Number(m[1]));
    };
    proc.stdout.on('data', on);
    proc.stderr.on('data', on);
    proc.once('exit', (code) => finish(new Error(`${cmd} exited (${code}):\n${out}`)));
    const poll = async () => {
      while (!done) {
        try { if ((await fetch(healthUrl)).status === 200) return finish(null, Number(new URL(healthUrl).port)); } catch { /* not yet */ }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    if (!re) poll();
  });
}

function hs256(secret, claims) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null;
}
const summary = (ms) => {
  const s = [...ms].sort((a, b) => a - b);
  return { count: s.length, p50: +pct(s, 50).toFixed(3), p99: +pct(s, 99).toFixed(3), max: +s.at(-1).toFixed(3) };
};
const now = () => Number(process.hrtime.bigint()) / 1e6;

// --- connect rate ----------------------------------------------------------------

/** One connection: open, connect, reply, close. Resolves with the latency (ms). */
function oneConnect(WebSocket, url, headers, params) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.once('open', () => ws.send(JSON.stringify({ id: 1, connect: params })));
    ws.once('message', (buf) => {
      const m = JSON.parse(buf.toString().split('\n')[0]);
      ws.terminate();
      if (m.result) resolve(now() - t0);
      else reject(new Error(`connect refused: ${buf}`));
    });
    ws.once('error', reject);
  });
}

async function connectRate(WebSocket, url, o, make) {
  const lat = [];
  let next = 0;
  const t0 = now();
  const lane = async () => {
    while (next < o.connections) {
      const i = next++;
      const { headers, params } = make(i);
      lat.push(await oneConnect(WebSocket, url, headers, params));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, lane));
  return { per_second: Math.round(o.connections / ((now() - t0) / 1000)), latency_ms: summary(lat) };
}

// --- publish round trip --------------------------------------------------------------

async function publisher(WebSocket, url, token) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const waiting = new Map();
  let id = 0;
  ws.on('message', (buf) => {
    for (const line of buf.toString().split('\n')) {
      if (!line) continue;
      const m = JSON.parse(line);
      const key = m.pub ? `pub:${m.pub.data.n}` : `id:${m.id}`;
      const w = waiting.get(key);
      if (w) { waiting.delete(key); w(m); }
    }
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const call = (method, params) => new Promise((resolve) => { const i = ++id; waiting.set(`id:${i}`, resolve); ws.send(JSON.stringify({ id: i, [method]: params })); });
  const must = async (method, params) => { const r = await call(method, params); if (!r.result) throw new Error(`${method}: ${JSON.stringify(r)}`); return r; };
  await must('connect', { token });
  let n = 0;
  return {
    subscribe: (channel) => must('subscribe', { channel }),
    /** publish and wait for the own delivery; resolves with the round trip (ms) */
    async roundTrip(channel) {
      const k = ++n;
      const got = new Promise((resolve) => waiting.set(`pub:${k}`, resolve));
      const t0 = now();
      const reply = call('publish', { channel, data: { n: k } });
      await got;
      const r = await reply;
      if (!r.result) throw new Error(`publish: ${JSON.stringify(r)}`);
      return now() - t0;
    },
    close: () => ws.terminate(),
  };
}

// --- main ------------------------------------------------------------------------------

async function main() {
  const o = args(process.argv.slice(2));
  if (o.serveBackend) return serveBackend();
  const require = createRequire(path.join(REPO, 'tests', 'package.json'));
  const WebSocket = require('ws');
  const secret = crypto.randomBytes(32).toString('hex');
  const backend = await start(process.execPath, [fileURLToPath(import.meta.url), '--serve-backend'], /backend (\d+)/);
  const b = `http://127.0.0.1:${backend.port}`;
  const port = await freePort();
  const herald = await start(o.herald, ['serve', '--listen', `127.0.0.1:${port}`, '--workers', String(o.workers),
    '--log-level', 'warn', '--token-hmac-secret', secret, '--channels.publish', 'anyone',
    '--proxy.connect-url', `${b}/connect`, '--proxy.publish-url', `${b}/publish`,
    '--namespace.chat.proxy-publish', 'true', '--namespace.chat.publish', 'anyone'], null, `http://127.0.0.1:${port}/health`)
    .catch((e) => { backend.proc.kill('SIGTERM'); throw e; });
  const url = `ws://127.0.0.1:${port}/ws`;
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const sides = {
    jwt: (i) => ({ headers: {}, params: { token: hs256(secret, { sub: `u${i}`, exp }) } }),
    proxy: (i) => ({ headers: { Cookie: `sid=s${i}` }, params: {} }),
  };
  const res = { params: o, connect: { jwt: [], proxy: [] }, publish: { direct: [], proxy: [] } };
  try {
    const pub = await publisher(WebSocket, url, hs256(secret, { sub: 'bench', exp }));
    await pub.subscribe('bench');
    await pub.subscribe('chat:bench');
    // warm-up (not counted): both paths once, the backend's keep-alive connections opened
    for (const side of ['jwt', 'proxy']) await connectRate(WebSocket, url, { ...o, connections: Math.min(200, o.connections) }, sides[side]);
    for (let i = 0; i < 50; i++) { await pub.roundTrip('bench'); await pub.roundTrip('chat:bench'); }
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 ? ['proxy', 'jwt'] : ['jwt', 'proxy']; // neither side always first
      for (const side of order) res.connect[side].push(await connectRate(WebSocket, url, o, sides[side]));
      const lat = { direct: [], proxy: [] };
      for (let i = 0; i < o.publishes; i++) {
        for (const side of i % 2 ? ['proxy', 'direct'] : ['direct', 'proxy']) {
          lat[side].push(await pub.roundTrip(side === 'proxy' ? 'chat:bench' : 'bench'));
        }
      }
      for (const side of ['direct', 'proxy']) res.publish[side].push(summary(lat[side]));
      const c = (side) => `${res.connect[side].at(-1).per_second} (p50/p99 ${res.connect[side].at(-1).latency_ms.p50}/${res.connect[side].at(-1).latency_ms.p99} ms)`;
      console.log(`round ${r + 1}: connect/s jwt ${c('jwt')}, proxy ${c('proxy')}; ` +
        `publish round trip p50/p99 ms direct ${res.publish.direct.at(-1).p50}/${res.publish.direct.at(-1).p99}, ` +
        `proxy ${res.publish.proxy.at(-1).p50}/${res.publish.proxy.at(-1).p99}`);
    }
    pub.close();
  } finally {
    herald.proc.kill('SIGTERM');
    backend.proc.kill('SIGTERM');
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const line = (k, xs) => `${k}: median of ${xs.length} rounds`;
  console.log(`${line('connect/s', res.connect.jwt)}: jwt ${med(res.connect.jwt.map((x) => x.per_second))}, ` +
    `proxy ${med(res.connect.proxy.map((x) => x.per_second))}`);
  for (const side of ['direct', 'proxy']) {
    console.log(`${line(`publish ${side}`, res.publish[side])}: p50 ${med(res.publish[side].map((x) => x.p50))} ms, ` +
      `p99 ${med(res.publish[side].map((x) => x.p99))} ms`);
  }
  if (o.json) writeFileSync(o.json, JSON.stringify(res, null, 2));
}

main().catch((e) => { console.error(`backend-hooks: ${e.message}`); process.exit(1); });
