// fake.mjs - an in-memory stand-in for a Herald server behind a WHATWG-style
// WebSocket class, for the SDK's unit tests (state machine, recovery, queue,
// tokens, heartbeat) without any network. The end-to-end tests
// (tests/integration/test_sdk_*.mjs) run the same things against the real server.
import { jsonCodec } from '../src/codec.js';

export class FakeServer {
  constructor() {
    this.sockets = [];
    this.refuse = false;       // new sockets fail to open (close 1006)
    this.refuseCode = null;    // with refuse: the error event first names this system code (Node: 'ECONNREFUSED')
    this.silent = false;       // sockets accept commands but never answer (dead connection)
    this.dropAfterPublish = false; // process a publish, then drop the connection before replying
    this.epoch = 'e1';
    this.channels = new Map(); // channel -> {offset, pubs: [{offset, data}]}
    this.keys = new Map();     // idempotency key -> {offset, epoch}
    this.commands = [];        // every command received, in order
    this.validToken = null;    // when set, connect needs this token (else 109 / 3005)
    this.badToken = null;      // this token gets 101 / 3500
    this.nextClient = 1;
    this.ping = 25;
  }

  chan(name) {
    let c = this.channels.get(name);
    if (!c) this.channels.set(name, (c = { offset: 0, pubs: [] }));
    return c;
  }

  /** Publish as the server API would: stored, pushed to every subscribed socket. */
  publish(channel, data, key) {
    if (key && this.keys.has(key)) return this.keys.get(key);
    const c = this.chan(channel);
    const pub = { offset: ++c.offset, data };
    c.pubs.push(pub);
    const res = { offset: pub.offset, epoch: this.epoch };
    if (key) this.keys.set(key, res);
    for (const s of this.sockets) {
      if (s.readyState === 1 && s.subs.has(channel)) s.push({ pub: { channel, ...pub } });
    }
    return res;
  }

  get open() { return this.sockets.filter((s) => s.readyState === 1); }

  /** A memory-engine restart: new epoch, empty channels, every socket dropped. */
  restart() {
    this.epoch = `e${Number(this.epoch.slice(1)) + 1}`;
    this.channels.clear();
    this.keys.clear();
    for (const s of this.open) s.serverClose(1006, '');
  }

  handle(sock, cmd) {
    this.commands.push(cmd);
    if (this.silent) return;
    const [method] = Object.keys(cmd).filter((k) => k !== 'id');
    const p = cmd[method];
    const reply = (result) => sock.push({ id: cmd.id, result });
    const error = (code, message) => sock.push({ id: cmd.id, error: { code, message, temporary: false } });
    switch (method) {
      case 'connect':
        if (this.badToken && p.token === this.badToken) {
          error(101, 'unauthorized');
          sock.push({ disconnect: { code: 3500, reason: 'invalid token', reconnect: false } });
          sock.serverClose(3500, 'invalid token');
          return;
        }
        if (this.validToken && p.token !== this.validToken) {
          error(109, 'token expired');
          sock.serverClose(3005, 'token expired');
          return;
        }
        sock.token = p.token;
        reply({ client: `c${this.nextClient++}`, version: 'fake', ping: this.ping, ...(this.ttl ? { expires: true, ttl: this.ttl } : {}) });
        return;
      case 'subscribe': {
        const c = this.chan(p.channel);
        sock.subs.add(p.channel);
        const r = { channel: p.channel, epoch: this.epoch, offset: c.offset, recoverable: true };
        if (p.recover) {
          r.recovered = p.epoch === this.epoch;
          r.publications = r.recovered ? c.pubs.filter((x) => x.offset > p.offset) : [];
        }
        reply(r);
        return;
      }
      case 'unsubscribe':
        sock.subs.delete(p.channel);
        reply({});
        return;
      case 'publish': {
        const res = this.publish(p.channel, p.data, p.idempotency_key);
        if (this.dropAfterPublish) {
          sock.serverClose(1006, '');
          return;
        }
        reply(res);
        return;
      }
      case 'refresh':
        sock.token = p.token;
        reply({ client: 'x', expires: true, ttl: 3600 });
        return;
      case 'history': {
        const c = this.chan(p.channel);
        let pubs = c.pubs.filter((x) => (!p.since || x.offset > p.since.offset) && (!p.before || x.offset < p.before.offset));
        if (p.reverse) pubs.reverse();
        const more = p.limit !== undefined && pubs.length > p.limit;
        if (more) pubs = pubs.slice(0, p.limit);
        const res = { epoch: this.epoch, offset: c.offset, publications: pubs };
        if (more) Object.assign(res, { more: true, next: { offset: pubs.at(-1).offset, epoch: this.epoch } });
        reply(res);
        return;
      }
      case 'presence':
        reply({ clients: Object.fromEntries(this.open.filter((s) => s.subs.has(p.channel)).map((s) => [s.id, { client: s.id, user: '' }])) });
        return;
      case 'presence_stats':
        reply({ num_clients: this.open.filter((s) => s.subs.has(p.channel)).length, num_users: 0 });
        return;
      case 'ping':
        reply({});
        return;
      case 'rpc': // the backend of the fake: echo, or its own error code
        if (p.method === 'fail') error(1404, 'unknown method');
        else reply({ data: { method: p.method, echo: p.data } });
        return;
      default:
        error(104, 'method not found');
    }
  }

  /** A WebSocket class bound to this server (pass as {WebSocket}). */
  get WebSocket() {
    const server = this;
    let n = 0;
    return class FakeWebSocket {
      constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.readyState = 0;
        this.protocol = '';
        this.subs = new Set();
        this.id = `s${++n}`;
        server.sockets.push(this);
        setTimeout(() => {
          if (this.readyState !== 0) return;
          if (server.refuse) {
            this.readyState = 3;
            if (server.refuseCode && this.onerror) {
              const error = Object.assign(new Error(`connect ${server.refuseCode} 127.0.0.1:8080`), { code: server.refuseCode });
              this.onerror({ type: 'error', error, message: error.message });
            }
            if (this.onclose) this.onclose({ code: 1006, reason: '' });
          } else {
            this.readyState = 1;
            if (this.onopen) this.onopen({});
          }
        }, 1);
      }
      send(data) {
        if (this.readyState !== 1) throw new Error('not open');
        for (const cmd of jsonCodec.decode(data)) server.handle(this, cmd);
      }
      close(code = 1005, reason = '') {
        if (this.readyState >= 2) return;
        this.readyState = 3;
        setTimeout(() => { if (this.onclose) this.onclose({ code, reason }); }, 1);
      }
      // ---- server side
      push(obj) {
        if (this.readyState !== 1) return;
        const frame = jsonCodec.encode([obj]);
        queueMicrotask(() => { if (this.readyState === 1 && this.onmessage) this.onmessage({ data: frame }); });
      }
      serverClose(code, reason = '') {
        if (this.readyState !== 1 || this.closing) return;
        this.closing = true;
        // after the pushes already made (microtasks)
        setTimeout(() => { this.readyState = 3; if (this.onclose) this.onclose({ code, reason }); }, 2);
      }
    };
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until cond() is true (polling), or throw after ms. */
export async function until(cond, ms = 2000, what = 'condition') {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(2);
  }
}
