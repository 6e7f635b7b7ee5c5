// sdk.mjs - helpers for the end-to-end tests of the JavaScript SDK
// (test_sdk_*.mjs) against the REAL herald binary, all on loopback:
//
//   loadSdk()               import clients/js/src/index.js (the SDK under test)
//   apiPublish(h, key, ...) POST /api/publish (and apiCall for any method)
//   tcpProxy(port)          a TCP relay the test can cut, refuse, black-hole
//                           (nothing passes, nothing closes: a dead network),
//                           or make drop only what the server sends
//   httpProxy(port)         an HTTP relay that answers WebSocket upgrades 403
//                           while `blockUpgrades` is true (a proxy that does
//                           not pass WebSocket), and tunnels them otherwise
//   signHs256(secret, claims) a JWT signed with node:crypto
//   collect(emitter, event) record every event into an array

import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { REPO } from './herald.mjs';

export async function loadSdk() {
  return import(pathToFileURL(path.join(REPO, 'clients', 'js', 'src', 'index.js')).href);
}

export async function apiCall(h, key, method, body) {
  const res = await fetch(`${h.url ?? `http://127.0.0.1:${h.port}`}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: `apikey ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/api/${method}: ${res.status} ${text}`);
  return JSON.parse(text);
}

export const apiPublish = (h, key, channel, data, extra = {}) => apiCall(h, key, 'publish', { channel, data, ...extra });

export function collect(emitter, event) {
  const out = [];
  emitter.on(event, (x) => out.push(x));
  return out;
}

/** Poll cond() every 10 ms until true; throw after ms with a description. */
export async function until(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function tcpProxy(targetPort) {
  const pairs = new Set();
  const p = {
    port: 0,
    /** 'pass' | 'refuse' (accept and close at once) | 'blackhole' (drop every byte, close nothing) | 'downdrop' (drop server->client) */
    mode: 'pass',
    refuseNext: 0, // refuse (as 'refuse') this many more connections, then apply mode
    accepted: 0,
    cutAll() {
      for (const x of pairs) { x.c.destroy(); x.u.destroy(); }
      pairs.clear();
    },
    close() {
      p.cutAll();
      return new Promise((r) => server.close(() => r()));
    },
  };
  const server = net.createServer((c) => {
    p.accepted++;
    if (p.refuseNext > 0) { p.refuseNext--; c.destroy(); return; }
    if (p.mode === 'refuse') { c.destroy(); return; }
    const u = net.connect(targetPort, '127.0.0.1');
    const x = { c, u };
    pairs.add(x);
    const end = () => { c.destroy(); u.destroy(); pairs.delete(x); };
    c.on('data', (d) => { if (p.mode === 'pass' || p.mode === 'downdrop') u.write(d); });
    u.on('data', (d) => { if (p.mode === 'pass') c.write(d); });
    c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => { p.port = server.address().port; resolve(p); }));
}

export function httpProxy(targetPort) {
  const sockets = new Set();
  const p = { port: 0, url: '', blockUpgrades: true, upgradesRefused: 0, upgradesPassed: 0, requests: 0 };
  const server = http.createServer((req, res) => {
    p.requests++;
    const headers = { ...req.headers };
    const up = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers }, (ur) => {
      const h = { ...ur.headers };
      delete h.connection;
      delete h['keep-alive'];
      res.writeHead(ur.statusCode, h);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('upgrade', (req, socket, head) => {
    if (p.blockUpgrades) {
      p.upgradesRefused++;
      const body = '{"error":"WebSocket blocked by this proxy","status":403}';
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    p.upgradesPassed++;
    const u = net.connect(targetPort, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      u.write(`${raw}\r\n`);
      if (head && head.length) u.write(head);
      u.pipe(socket);
      socket.pipe(u);
    });
    const end = () => { u.destroy(); socket.destroy(); };
    u.on('error', end); socket.on('error', end); u.on('close', end); socket.on('close', end);
  });
  p.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    p.port = server.address().port;
    p.url = `http://127.0.0.1:${p.port}`;
    resolve(p);
  }));
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function signHs256(secret, claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
