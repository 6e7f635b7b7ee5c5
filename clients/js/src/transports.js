// transports.js - the three ways the SDK reaches Herald's native protocol
// (docs/transports.md). Each transport moves arrays of protocol objects and
// knows nothing about commands, subscriptions or reconnecting:
//
//   websocket     /ws: one frame per batch (JSON text, or MessagePack binary
//                 with the herald.msgpack subprotocol)
//   http_stream   GET /stream (chunked NDJSON read with fetch) + POST /stream/send
//   long_polling  POST /poll/open, GET /poll?session&cursor, POST /poll/send
//
// Events: 'open' (ready for commands), 'messages' (array of decoded objects),
// 'activity' (bytes arrived without a message: a heartbeat), 'close'
// ({code, reason, opened}) exactly once. close() ends it at once, locally:
// the 'close' event fires synchronously with the code given, whatever the
// network does afterwards (a dead connection may never answer).
//
// The HTTP transports POST commands one request at a time: the server runs
// frames in the order their 202s came back, so a second POST waits for the
// first (commands queued meanwhile leave together in the next one).

import { Emitter } from './emitter.js';
import { jsonCodec } from './codec.js';

/** Close code the SDK uses for a connection that ended without one (like the browser's 1006). */
export const ABNORMAL = 1006;

class BaseTransport extends Emitter {
  constructor(name) {
    super();
    this.name = name;
    this.opened = false;
    this.closed = false;
  }

  _open() {
    if (this.closed || this.opened) return;
    this.opened = true;
    this.emit('open');
  }

  /** End the transport; emits 'close' once with {code, reason, opened}. */
  close(code = 1000, reason = '') {
    if (this.closed) return;
    this.closed = true;
    this._teardown(code, reason);
    this.emit('close', { code, reason, opened: this.opened });
  }

  _teardown() {}
}

export class WebSocketTransport extends BaseTransport {
  /**
   * @param {string} url ws:// or wss:// URL of /ws
   * @param {{WebSocket: any, codec?: object, openTimeout?: number}} opts
   */
  constructor(url, { WebSocket, codec = jsonCodec, openTimeout = 10000 }) {
    super('websocket');
    this.url = url;
    this.WS = WebSocket;
    this.codec = codec;
    this.openTimeout = openTimeout;
    this.ws = null;
    this.timer = null;
    this.error = '';      // what the implementation said about a failure
    this.refused = false; // the TCP connection was refused (nothing listening)
  }

  open() {
    let ws;
    try {
      ws = this.codec.binary ? new this.WS(this.url, [this.codec.subprotocol]) : new this.WS(this.url);
    } catch (e) {
      queueMicrotask(() => this.close(ABNORMAL, `cannot open WebSocket: ${e && e.message}`));
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    this.timer = setTimeout(() => this.close(ABNORMAL, 'WebSocket open timed out'), this.openTimeout);
    ws.onopen = () => {
      clearTimeout(this.timer);
      this.timer = null;
      if (this.codec.binary && ws.protocol !== this.codec.subprotocol) {
        this.close(ABNORMAL, `server did not accept the ${this.codec.subprotocol} subprotocol`);
        return;
      }
      this._open();
    };
    ws.onmessage = (ev) => {
      if (this.closed) return;
      let msgs;
      try {
        msgs = this.codec.decode(typeof ev.data === 'string' ? ev.data : toBytes(ev.data));
      } catch (e) {
        this.close(ABNORMAL, `undecodable frame from the server: ${e.message}`);
        return;
      }
      if (msgs.length) this.emit('messages', msgs);
      else this.emit('activity');
    };
    // The close event follows and carries the code; Node's WebSocket
    // implementations also say why here (browsers say nothing).
    ws.onerror = (ev) => { this.error = errorText(ev && (ev.error || ev)); };
    ws.onclose = (ev) => {
      // ECONNREFUSED: nothing listens (a server restarting), which is not a
      // WebSocket blocked on the way: the client retries WebSocket first.
      this.refused = !this.opened && /ECONNREFUSED/.test(this.error);
      const why = this.opened ? 'connection closed' : `WebSocket failed to open${this.error ? `: ${this.error}` : ''}`;
      this.close(ev.code || ABNORMAL, ev.reason || why);
    };
  }

  send(msgs) {
    if (this.closed || !this.ws) return false;
    try {
      this.ws.send(this.codec.encode(msgs));
      return true;
    } catch (e) {
      this.close(ABNORMAL, `send failed: ${e.message}`);
      return false;
    }
  }

  _teardown() {
    clearTimeout(this.timer);
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    try {
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(1000);
    } catch { /* already closing */ }
  }
}

/** An error's message with its system code (Node: 'fetch failed (ECONNREFUSED)'). */
export function errorText(e) {
  if (!e) return '';
  const msg = e.message || (e instanceof Error ? String(e) : ''); // a browser's error Event says nothing
  if (!msg) return '';
  const code = e.code || (e.cause && e.cause.code);
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

function toBytes(d) {
  if (d instanceof ArrayBuffer) return new Uint8Array(d);
  if (ArrayBuffer.isView(d)) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  if (Array.isArray(d)) { // ws fragments (Buffer[]) when binaryType is 'fragments'
    const n = d.reduce((a, b) => a + b.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const b of d) { out.set(b, o); o += b.length; }
    return out;
  }
  throw new TypeError('unknown binary message type');
}

/** Shared by the two HTTP transports: a session id, serialised POSTs of command frames. */
class HttpSessionTransport extends BaseTransport {
  constructor(name, baseUrl, { fetch, openTimeout = 10000, sendPath }) {
    super(name);
    this.base = baseUrl;
    this.fetch = fetch;
    this.openTimeout = openTimeout;
    this.sendPath = sendPath;
    this.session = null;
    this.cursor = 0;
    this.outq = [];
    this.posting = false;
    this.aborts = new Set();
  }

  _abortable(ms) {
    const ac = new AbortController();
    this.aborts.add(ac);
    let timer = null;
    if (ms > 0) timer = setTimeout(() => ac.abort(), ms);
    return { signal: ac.signal, done: () => { clearTimeout(timer); this.aborts.delete(ac); } };
  }

  send(msgs) {
    if (this.closed) return false;
    this.outq.push(...msgs);
    this._pump();
    return true;
  }

  async _pump() {
    if (this.posting || !this.session || !this.outq.length || this.closed) return;
    this.posting = true;
    const batch = this.outq.splice(0);
    const body = batch.map((m) => JSON.stringify(m)).join('\n');
    const a = this._abortable(this.openTimeout);
    try {
      const res = await this.fetch(`${this.base}${this.sendPath}?session=${this.session}`, {
        method: 'POST', body, signal: a.signal, cache: 'no-store',
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
      });
      const text = await res.text().catch(() => '');
      if (res.status !== 202 && res.status !== 200) {
        this.close(res.status === 404 ? ABNORMAL : ABNORMAL, `POST ${this.sendPath}: ${res.status} ${text.slice(0, 200)}`);
        return;
      }
    } catch (e) {
      this.close(ABNORMAL, `POST ${this.sendPath} failed: ${errorText(e)}`);
      return;
    } finally {
      a.done();
      this.posting = false;
    }
    this._pump();
  }

  _teardown() {
    for (const ac of this.aborts) ac.abort();
    this.aborts.clear();
    this.outq.length = 0;
  }
}

export class HttpStreamTransport extends HttpSessionTransport {
  /** @param {string} baseUrl http(s)://host[:port][/prefix] */
  constructor(baseUrl, opts) {
    super('http_stream', baseUrl, { ...opts, sendPath: '/stream/send' });
  }

  open() {
    this._run();
  }

  async _run() {
    const ac = new AbortController();
    this.aborts.add(ac);
    const timer = setTimeout(() => { if (!this.opened) ac.abort(); }, this.openTimeout);
    let res;
    try {
      res = await this.fetch(`${this.base}/stream`, { signal: ac.signal, cache: 'no-store' });
    } catch (e) {
      clearTimeout(timer);
      this.close(ABNORMAL, `GET /stream failed: ${errorText(e)}`);
      return;
    }
    if (!res.ok || !res.body) {
      clearTimeout(timer);
      const text = await res.text().catch(() => '');
      this.close(ABNORMAL, `GET /stream: ${res.status} ${text.slice(0, 200)}`);
      return;
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let pending = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (this.closed) return;
        if (done) break;
        pending += dec.decode(value, { stream: true });
        const lines = pending.split('\n');
        pending = lines.pop();
        const msgs = [];
        let heartbeat = false;
        for (const line of lines) {
          if (line === '') { heartbeat = true; continue; }
          const obj = JSON.parse(line);
          if (this.session === null) {
            this.session = obj.session;
            this.cursor = obj.cursor || 0;
            clearTimeout(timer);
            this._open();
            this._pump();
            continue;
          }
          this.cursor++;
          msgs.push(obj);
        }
        if (msgs.length) this.emit('messages', msgs);
        else if (heartbeat || lines.length === 0) this.emit('activity');
      }
    } catch (e) {
      clearTimeout(timer);
      this.close(ABNORMAL, `stream broken: ${errorText(e)}`);
      return;
    } finally {
      this.aborts.delete(ac);
    }
    clearTimeout(timer);
    this.close(ABNORMAL, 'stream ended');
  }
}

export class LongPollTransport extends HttpSessionTransport {
  /**
   * @param {string} baseUrl
   * @param {{fetch: Function, openTimeout?: number, pollTimeout?: number}} opts pollTimeout:
   *   how long a held GET /poll may take before it counts as dead (must exceed poll.timeout)
   */
  constructor(baseUrl, opts) {
    super('long_polling', baseUrl, { ...opts, sendPath: '/poll/send' });
    this.pollTimeout = opts.pollTimeout ?? 40000;
  }

  open() {
    this._run();
  }

  async _run() {
    const a = this._abortable(this.openTimeout);
    try {
      const res = await this.fetch(`${this.base}/poll/open`, { method: 'POST', signal: a.signal, cache: 'no-store' });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${res.status} ${text.slice(0, 200)}`);
      const j = JSON.parse(text);
      this.session = j.session;
      this.cursor = j.cursor || 0;
    } catch (e) {
      this.close(ABNORMAL, `POST /poll/open failed: ${errorText(e)}`);
      return;
    } finally {
      a.done();
    }
    if (this.closed) return;
    this._open();
    this._pump();
    while (!this.closed) {
      const p = this._abortable(this.pollTimeout);
      try {
        const res = await this.fetch(`${this.base}/poll?session=${this.session}&cursor=${this.cursor}`,
          { signal: p.signal, cache: 'no-store' });
        const text = await res.text();
        if (this.closed) return;
        if (res.status !== 200) {
          this.close(ABNORMAL, `GET /poll: ${res.status} ${text.slice(0, 200)}`);
          return;
        }
        const j = JSON.parse(text);
        this.cursor = j.cursor;
        if (j.messages && j.messages.length) this.emit('messages', j.messages);
        else this.emit('activity');
      } catch (e) {
        this.close(ABNORMAL, `GET /poll failed: ${errorText(e)}`);
        return;
      } finally {
        p.done();
      }
    }
  }
}
