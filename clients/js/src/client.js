// client.js - Herald: the connection to a Herald server and everything that
// makes drops invisible to the application.
//
//  - transports in order of preference (websocket -> http_stream ->
//    long_polling by default): one that fails to OPEN is skipped at once for
//    the next, except a WebSocket whose TCP connection was refused (nothing
//    listens: the server is restarting, not blocking WebSocket), which is
//    retried after the backoff delay; once connected over a fallback after a
//    WebSocket failure, a WebSocket is tried again at once (the server may
//    just have come back), then every upgradeInterval, and when one opens the
//    client moves back to it; without a WebSocket implementation (Node < 22
//    without {WebSocket}) connect() emits a 'warning';
//  - reconnects with exponential backoff and full jitter (Backoff), at once
//    when the browser says it is back online; honours the server's disconnect
//    codes (3000-3499 come back, 3500+ stop; 3005 gets a new token first);
//  - heartbeat: when nothing has arrived for pingInterval (the server's ping
//    interval by default) a `ping` command is sent; no answer within
//    pongTimeout means the connection is dead: it is dropped and replaced;
//  - subscriptions survive reconnects and resume with `recover` (epoch,
//    offset): nothing lost, nothing twice (Subscription);
//  - publishes wait in a bounded queue while offline and are (re)sent with an
//    idempotency key until acknowledged, so each is delivered exactly once;
//    after a reconnect they leave once the resubscribes are answered, so a
//    publication to a channel the client subscribes to reaches its own
//    subscription even when recovery failed (a memory-engine restart);
//  - tokens: `token` and/or `getToken()`; refreshed before expiry, on the
//    server's `refresh` push, and after 3005.
//
// States: 'disconnected' -> 'connecting' -> 'connected' (-> 'connecting' ...).
// Events: 'state', 'connecting', 'connected', 'disconnected', 'error',
// 'publication' (every publication of every subscription), 'transport',
// 'warning' ({code, message}; printed with console.warn when nobody listens).

import { Emitter } from './emitter.js';
import { Backoff } from './backoff.js';
import { jsonCodec, msgpackCodec } from './codec.js';
import {
  HeraldError, ReplyError, DisconnectError, TimeoutError, QueueFullError, ErrorCodes, shouldReconnect,
} from './errors.js';
import { WebSocketTransport, HttpStreamTransport, LongPollTransport, ABNORMAL } from './transports.js';
import { Subscription, matchPattern } from './subscription.js';

export const VERSION = '0.1.0';
export const TRANSPORTS = Object.freeze(['websocket', 'http_stream', 'long_polling']);

const DEFAULTS = {
  name: 'herald-js',
  version: VERSION,
  token: null,
  getToken: null,
  format: 'json',            // 'json' | 'msgpack' (WebSocket only; HTTP transports speak JSON)
  codec: null,               // a custom codec object (see codec.js), overrides format
  transports: TRANSPORTS,
  minReconnectDelay: 500,
  maxReconnectDelay: 20000,
  timeout: 10000,            // reply timeout of commands other than publish; open timeout of transports
  pingInterval: 0,           // ms of silence before a ping; 0 = the server's ping interval (connect reply)
  pongTimeout: 10000,        // ms to wait for the ping reply before declaring the connection dead
  pollTimeout: 40000,        // longest a held long poll may take (> the server's poll.timeout, 25 s)
  upgradeInterval: 60000,    // ms between attempts to go back to WebSocket from a fallback; 0 = never
  maxQueued: 1000,           // publications kept while offline; more are rejected (QueueFullError)
  refreshAhead: 10000,       // refresh a token this many ms before it expires; 0 = wait for the server's refresh push
  maxCommandsPerFrame: 50,   // commands per frame / POST (server: channels.max_commands_per_frame, 100)
  WebSocket: undefined,
  fetch: undefined,
  random: Math.random,
};

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  if (globalThis.crypto && globalThis.crypto.getRandomValues) globalThis.crypto.getRandomValues(a);
  else for (let i = 0; i < bytes; i++) a[i] = Math.floor(Math.random() * 256);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** http(s) base URL and ws(s) URL of /ws from what the application gave. */
export function resolveUrls(url) {
  const base = globalThis.location && globalThis.location.href ? globalThis.location.href : undefined;
  const u = new URL(url || '/', base);
  const path = u.pathname.replace(/\/ws\/?$/, '').replace(/\/+$/, '');
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  return {
    http: `${secure ? 'https' : 'http'}://${u.host}${path}`,
    ws: `${secure ? 'wss' : 'ws'}://${u.host}${path}/ws`,
  };
}

export class Herald extends Emitter {
  /**
   * @param {string} url server URL: 'http://host:8080', 'ws://host:8080/ws', or '/' in a page
   * @param {object} [options] see DEFAULTS and docs/sdk-js.md
   */
  constructor(url, options = {}) {
    super();
    const o = { ...DEFAULTS, ...options };
    this.options = o;
    this.urls = resolveUrls(url);
    this.WS = o.WebSocket || globalThis.WebSocket;
    this.fetchFn = o.fetch || (globalThis.fetch ? globalThis.fetch.bind(globalThis) : null);
    this.codec = o.codec || (o.format === 'msgpack' ? msgpackCodec : jsonCodec);
    this._noWebSocket = o.transports.includes('websocket') && !this.WS;
    this.transports = o.transports.filter((t) => {
      if (!TRANSPORTS.includes(t)) throw new HeraldError(ErrorCodes.BAD_ARGUMENT, `unknown transport "${t}"`);
      return t === 'websocket' ? !!this.WS : !!this.fetchFn;
    });
    if (!this.transports.length) {
      throw new HeraldError(ErrorCodes.NO_TRANSPORT,
        'no transport available: pass {WebSocket} (e.g. the ws package on Node 18 and 20) or {fetch}');
    }
    /** 'disconnected' | 'connecting' | 'connected' */
    this.state = 'disconnected';
    this.clientId = null;
    this.transportName = null;
    this.serverVersion = null;
    this.user = null;
    this._backoff = new Backoff({ minDelay: o.minReconnectDelay, maxDelay: o.maxReconnectDelay, random: o.random });
    this._token = o.token || null;
    this._want = false;
    this._t = null;                 // current transport
    this._ti = 0;                   // index of the transport to try
    this._subs = new Map();
    this._outbox = [];              // publish entries not yet acknowledged, in order
    this._pending = new Map();      // command id -> {resolve, reject, timer, entry?}
    this._nextId = 1;
    this._keyPrefix = randomHex(8);
    this._keyCounter = 0;
    this._sendBuf = [];
    this._flushScheduled = false;
    this._reconnectTimer = null;
    this._hbTimer = null;
    this._refreshTimer = null;
    this._upgradeTimer = null;
    this._lastRx = 0;
    this._ping = null;              // {id, at} of an outstanding heartbeat ping
    this._serverPing = 0;
    this._disconnectPush = null;
    this._switching = false;
    this._refreshing = false;
    this._attempt = 0;
    this._lastFailure = '';         // why the last transport failed to open (ready()'s rejection)
    this._wsFailed = false;         // a WebSocket failed to open since the last WebSocket connection
    this._hold = null;              // the outbox waits for the resubscribes of this connection
    this._onOnline = () => this._online();
    this._onOffline = () => this._offline();
  }

  // ---- connection ------------------------------------------------------------

  /** Start connecting (and keep the connection up until disconnect()). */
  connect() {
    if (this._want) return this;
    this._want = true;
    this._backoff.reset();
    this._ti = 0;
    this._lastFailure = '';
    if (typeof globalThis.addEventListener === 'function' && globalThis.navigator &&
        'onLine' in globalThis.navigator) {
      globalThis.addEventListener('online', this._onOnline);
      globalThis.addEventListener('offline', this._onOffline);
    }
    if (this._noWebSocket) {
      this._warn('no_websocket', 'no WebSocket implementation here (Node before 22 has none built in): ' +
        `pass one, new Herald(url, { WebSocket }) with the ws package; using ${this.transports.join(', ')} meanwhile`);
    }
    this._attemptNow();
    return this;
  }

  /** A 'warning' event, or console.warn when nobody listens. */
  _warn(code, message) {
    if (!this.emit('warning', { code, message }) && typeof console !== 'undefined') console.warn(`herald-client: ${message}`);
  }

  /** Close the connection for good; pending commands and queued publishes are rejected. */
  disconnect() {
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('online', this._onOnline);
      globalThis.removeEventListener('offline', this._onOffline);
    }
    const was = this._want || this.state !== 'disconnected';
    this._want = false;
    this._clearTimers();
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const t = this._t;
    this._t = null;
    if (t) t.close(1000, 'client disconnect');
    const err = new HeraldError(ErrorCodes.CLIENT_CLOSED, 'client disconnected');
    this._failPending(err, true);
    for (const s of this._subs.values()) if (s.state !== 'unsubscribed') s.state = 'unsubscribed';
    if (was) {
      this._setState('disconnected');
      this.emit('disconnected', { code: 1000, reason: 'client disconnect', reconnect: false });
    }
  }

  /** Resolves when connected (rejects after timeoutMs, or when the client stops for good). */
  ready(timeoutMs = 10000) {
    if (this.state === 'connected') return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      const done = (fn, v) => { clearTimeout(timer); off1(); off2(); fn(v); };
      // Say why when attempts failed (a refused connection is not a timeout).
      const timer = setTimeout(() => done(reject, this._lastFailure
        ? new HeraldError(ErrorCodes.NO_TRANSPORT, `cannot connect to ${this.urls.http}`, { temporary: true, detail: this._lastFailure })
        : new TimeoutError('connect')), timeoutMs);
      const off1 = this.on('connected', () => done(resolve, this));
      const off2 = this.on('disconnected', (ctx) => {
        if (!ctx.reconnect) done(reject, new DisconnectError(ctx.code, ctx.reason, false));
      });
    });
  }

  _setState(s) {
    if (this.state === s) return;
    const prev = this.state;
    this.state = s;
    this.emit('state', { state: s, previous: prev });
  }

  _attemptNow() {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (!this._want || this._t) return;
    const name = this.transports[this._ti];
    this._setState('connecting');
    this.emit('connecting', { attempt: this._attempt, transport: name });
    const t = this._makeTransport(name);
    this._t = t;
    this._disconnectPush = null;
    t.on('open', () => this._onOpen(t));
    t.on('messages', (msgs) => this._onMessages(t, msgs));
    t.on('activity', () => { if (t === this._t) this._lastRx = Date.now(); });
    t.on('close', (info) => this._onClose(t, info));
    t.open();
  }

  _makeTransport(name) {
    const o = this.options;
    if (name === 'websocket') {
      return new WebSocketTransport(this.urls.ws, { WebSocket: this.WS, codec: this.codec, openTimeout: o.timeout });
    }
    if (name === 'http_stream') return new HttpStreamTransport(this.urls.http, { fetch: this.fetchFn, openTimeout: o.timeout });
    return new LongPollTransport(this.urls.http, { fetch: this.fetchFn, openTimeout: o.timeout, pollTimeout: o.pollTimeout });
  }

  async _onOpen(t) {
    if (t !== this._t) return;
    this._lastRx = Date.now();
    let token = this._token;
    if (!token && this.options.getToken) {
      try {
        token = await this._fetchToken('connect');
      } catch (e) {
        if (t !== this._t) return;
        this.emit('error', e);
        t.close(ABNORMAL, `getToken failed: ${e.message}`);
        return;
      }
      if (t !== this._t) return;
    }
    const params = { name: this.options.name, version: this.options.version };
    if (token) params.token = token;
    let res;
    try {
      res = await this._call('connect', params, { transport: t });
    } catch (e) {
      if (t !== this._t) return;
      if (e instanceof ReplyError) {
        if (e.code === 109) this._token = null; // expired: the server closes 3005; a new token next time
        this.emit('error', e);
        // The server closes after 101 (3500) / 109 (3005); do not wait for it on HTTP transports.
        if (e.code === 101) this._disconnectPush = { code: 3500, reason: 'invalid token', reconnect: false };
        else if (e.code === 109) this._disconnectPush = { code: 3005, reason: 'token expired', reconnect: true };
        t.close(this._disconnectPush ? this._disconnectPush.code : ABNORMAL, e.message);
      } else {
        t.close(ABNORMAL, `connect failed: ${e.message}`);
      }
      return;
    }
    if (t !== this._t) return;
    this._onConnected(t, res);
  }

  _onConnected(t, res) {
    this.clientId = res.client;
    this.serverVersion = res.version || null;
    this.user = res.user === undefined ? null : res.user;
    this._serverPing = Number(res.ping) || 0;
    this.transportName = t.name;
    this._attempt = 0;
    this._backoff.reset();
    this._setState('connected');
    this._startHeartbeat();
    if (res.expires && typeof res.ttl === 'number') this._scheduleRefresh(res.ttl);
    // Channels the server subscribed at connect (the token's `channels`).
    const serverSubs = res.subs || {};
    const resubscribes = [];
    for (const s of this._subs.values()) {
      const r = serverSubs[s.channel];
      if (r && !r.error) {
        s._setSubscribing();
        s._onResult(r, false);
      } else {
        resubscribes.push(this._sendSubscribe(s));
      }
    }
    this._flushOutboxAfter(t, resubscribes);
    this._lastFailure = '';
    const wsFailed = this._wsFailed;
    if (t.name === 'websocket') this._wsFailed = false;
    this.emit('connected', { client: this.clientId, transport: t.name, version: this.serverVersion, user: this.user });
    this.emit('transport', { transport: t.name });
    if (this._ti > 0 && this.transports[0] === 'websocket' && this.options.upgradeInterval > 0) {
      this._scheduleUpgrade(wsFailed ? this.options.minReconnectDelay : this.options.upgradeInterval);
    }
  }

  /**
   * Send the queued publishes once the resubscribes (promises) are answered
   * (at most `timeout` later), so that our own publications reach our
   * subscriptions as live ones even when their recovery failed. publish()
   * queues behind them meanwhile, keeping the order.
   */
  _flushOutboxAfter(t, resubscribes) {
    const hold = { t, timer: null };
    const release = () => {
      if (this._hold !== hold) return;
      clearTimeout(hold.timer);
      this._hold = null;
      if (t === this._t && this.state === 'connected') for (const e of this._outbox) if (!e.id) this._sendPublish(e);
    };
    this._hold = hold;
    if (!resubscribes.length || !this._outbox.length) {
      release();
      return;
    }
    hold.timer = setTimeout(release, this.options.timeout);
    Promise.allSettled(resubscribes).then(release);
  }

  _onClose(t, info) {
    if (t !== this._t) return;
    this._t = null;
    this._clearTimers();
    const wasConnected = this.state === 'connected';
    const push = this._disconnectPush;
    this._disconnectPush = null;
    let code = push ? push.code : info.code || ABNORMAL;
    let reason = push ? push.reason : info.reason || '';
    let reconnect = push ? !!push.reconnect : shouldReconnect(code);
    // Commands in flight are lost with the connection: publishes go back to the
    // queue (resent with their keys), everything else is rejected.
    this._failPending(new HeraldError(ErrorCodes.DISCONNECTED, `connection lost: ${reason || code}`, { temporary: true }), false);
    for (const s of this._subs.values()) if (s.state === 'subscribed') s._setSubscribing();

    if (this._switching) {
      this._switching = false;
      this._ti = 0;
      this._attemptNow();
      return;
    }
    if (!this._want) return;

    // A transport that never opened: try the next one at once (a refused
    // WebSocket means the server is down: back off and try WebSocket again).
    if (!info.opened && !wasConnected) {
      this.emit('transport', { transport: t.name, failed: true, reason });
      this._lastFailure = `${t.name}: ${reason}`;
      if (t.name === 'websocket') this._wsFailed = true;
      if (this._ti + 1 < this.transports.length && !t.refused) {
        this._ti++;
        this._attemptNow();
        return;
      }
      this._ti = 0;
    }
    if (code === 3005) {
      this._token = null;
      if (!this.options.getToken) {
        reconnect = false;
        this.emit('error', new HeraldError(ErrorCodes.TOKEN, 'token expired and no getToken() to get a new one'));
      }
    }
    if (code === 3500) this._token = this.options.getToken ? null : this._token;
    if (wasConnected || !reconnect) this.emit('disconnected', { code, reason, reconnect });
    if (!reconnect) {
      this._want = false;
      this._setState('disconnected');
      const err = new DisconnectError(code, reason, false);
      this.emit('error', err);
      this._failPending(err, true);
      return;
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    this._setState('connecting');
    const delay = this._backoff.next();
    this._attempt++;
    this.emit('connecting', { attempt: this._attempt, delay, transport: this.transports[this._ti] });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      this._attemptNow();
    }, delay);
  }

  _online() {
    if (!this._want || this._t) return;
    this._backoff.reset();
    this._ti = 0;
    this._attemptNow();
  }

  _offline() {
    if (this._t) this._t.close(ABNORMAL, 'the browser went offline');
  }

  _clearTimers() {
    clearInterval(this._hbTimer);
    clearTimeout(this._refreshTimer);
    clearTimeout(this._upgradeTimer);
    this._hbTimer = this._refreshTimer = this._upgradeTimer = null;
    this._ping = null;
    if (this._hold) clearTimeout(this._hold.timer);
    this._hold = null;
  }

  // ---- heartbeat, upgrade, tokens ----------------------------------------------

  _startHeartbeat() {
    const interval = this.options.pingInterval || (this._serverPing ? this._serverPing * 1000 : 25000);
    const tick = Math.max(50, Math.min(1000, interval / 4));
    this._lastRx = Date.now();
    this._hbTimer = setInterval(() => {
      const t = this._t;
      if (!t || this.state !== 'connected') return;
      const now = Date.now();
      if (this._ping) {
        if (now - this._ping.at > this.options.pongTimeout) {
          t.close(ABNORMAL, `no heartbeat: nothing received for ${now - this._lastRx} ms`);
        }
        return;
      }
      if (now - this._lastRx >= interval) {
        const ping = { at: now };
        this._ping = ping;
        this._call('ping', {}, { transport: t, timeout: 0 })
          .then(() => { if (this._ping === ping) this._ping = null; }, () => {});
      }
    }, tick);
  }

  _scheduleUpgrade(delay = this.options.upgradeInterval) {
    clearTimeout(this._upgradeTimer);
    this._upgradeTimer = setTimeout(() => {
      this._upgradeTimer = null;
      if (this.state !== 'connected' || this._ti === 0) return;
      const probe = new WebSocketTransport(this.urls.ws, { WebSocket: this.WS, codec: this.codec, openTimeout: this.options.timeout });
      probe.on('open', () => {
        probe.close(1000, 'probe');
        if (this.state !== 'connected' || this._ti === 0 || !this._t) return;
        this.emit('transport', { transport: 'websocket', upgrade: true });
        this._switching = true;
        this._t.close(1000, 'switching to websocket');
      });
      probe.on('close', (info) => {
        if (!info.opened && this.state === 'connected' && this._ti > 0) this._scheduleUpgrade();
      });
      probe.open();
    }, delay);
  }

  async _fetchToken(reason) {
    let tok;
    try {
      tok = await this.options.getToken({ reason });
    } catch (e) {
      throw new HeraldError(ErrorCodes.TOKEN, 'getToken() failed', { temporary: true, detail: e && e.message, cause: e });
    }
    if (typeof tok !== 'string' || !tok) throw new HeraldError(ErrorCodes.TOKEN, 'getToken() returned no token', { temporary: true });
    this._token = tok;
    return tok;
  }

  _scheduleRefresh(ttlSeconds) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    const ahead = this.options.refreshAhead;
    if (!ahead || !this.options.getToken) return;
    const ms = ttlSeconds * 1000;
    const delay = Math.max(ms - ahead, ms / 2);
    this._refreshTimer = setTimeout(() => { this._refreshTimer = null; this._refresh('expiring'); }, delay);
  }

  async _refresh(reason) {
    if (this._refreshing || !this.options.getToken || this.state !== 'connected') return;
    this._refreshing = true;
    try {
      const t = this._t;
      const token = await this._fetchToken(reason);
      if (t !== this._t || this.state !== 'connected') return;
      const res = await this._call('refresh', { token }, { transport: t });
      this.emit('refreshed', { expires: !!res.expires, ttl: res.ttl });
      if (res.expires && typeof res.ttl === 'number') this._scheduleRefresh(res.ttl);
    } catch (e) {
      this.emit('error', e instanceof HeraldError ? e : new HeraldError(ErrorCodes.TOKEN, 'token refresh failed', { detail: String(e) }));
    } finally {
      this._refreshing = false;
    }
  }

  // ---- commands ----------------------------------------------------------------

  /** Send {id, method: params} on transport t; resolves with the result. */
  _call(method, params, { transport = this._t, timeout = this.options.timeout, entry = null } = {}) {
    return new Promise((resolve, reject) => {
      if (!transport || transport !== this._t) {
        reject(new HeraldError(ErrorCodes.DISCONNECTED, 'not connected', { temporary: true }));
        return;
      }
      const id = this._nextId++;
      const p = { resolve, reject, timer: null, entry, method };
      if (timeout > 0) {
        p.timer = setTimeout(() => {
          this._pending.delete(id);
          reject(new TimeoutError(method));
        }, timeout);
      }
      this._pending.set(id, p);
      this._enqueue({ id, [method]: params });
    });
  }

  /** Like _call, but waits (up to the timeout) for the connection first. */
  async _callConnected(method, params) {
    if (this.state !== 'connected') {
      if (!this._want) throw new HeraldError(ErrorCodes.CLIENT_CLOSED, 'client is not connected (call connect())');
      await this.ready(this.options.timeout);
    }
    return this._call(method, params);
  }

  _enqueue(msg) {
    this._sendBuf.push(msg);
    if (this._flushScheduled) return;
    this._flushScheduled = true;
    queueMicrotask(() => {
      this._flushScheduled = false;
      const buf = this._sendBuf;
      this._sendBuf = [];
      const t = this._t;
      if (!t || !buf.length) return;
      const n = this.options.maxCommandsPerFrame;
      for (let i = 0; i < buf.length; i += n) t.send(buf.slice(i, i + n));
    });
  }

  _failPending(err, includePublishes) {
    for (const [id, p] of this._pending) {
      clearTimeout(p.timer);
      if (p.entry) p.entry.id = 0; // back to the queue
      else p.reject(err);
      this._pending.delete(id);
    }
    this._sendBuf = [];
    if (includePublishes) {
      const out = this._outbox;
      this._outbox = [];
      for (const e of out) e.reject(err);
    }
  }

  _onMessages(t, msgs) {
    if (t !== this._t) return;
    this._lastRx = Date.now();
    for (const m of msgs) {
      if (t !== this._t) return; // a handler closed it
      if (m.id) {
        const p = this._pending.get(m.id);
        if (!p) continue;
        this._pending.delete(m.id);
        clearTimeout(p.timer);
        if (p.entry) this._onPublishReply(p.entry, m);
        else if (m.error) p.reject(new ReplyError(m.error));
        else p.resolve(m.result || {});
      } else if (m.pub) {
        this._routePub(m.pub);
      } else if (m.join || m.leave) {
        const kind = m.join ? 'join' : 'leave';
        const ev = m[kind];
        for (const s of this._subsFor(ev.channel)) if (s.state === 'subscribed') s.emit(kind, ev);
      } else if (m.unsubscribe) {
        const s = this._subs.get(m.unsubscribe.channel);
        if (s) this._unsubscribe(s, m.unsubscribe.code, m.unsubscribe.reason, false);
      } else if (m.disconnect) {
        this._disconnectPush = m.disconnect;
        if (t.name !== 'websocket') t.close(m.disconnect.code, m.disconnect.reason);
      } else if (m.refresh) {
        this._refresh('refresh push');
      }
    }
  }

  _subsFor(channel) {
    const out = [];
    const exact = this._subs.get(channel);
    if (exact) out.push(exact);
    for (const s of this._subs.values()) if (s.pattern && matchPattern(s.channel, channel)) out.push(s);
    return out;
  }

  _routePub(pub) {
    for (const s of this._subsFor(pub.channel)) s._onPub(pub);
  }

  // ---- subscriptions -----------------------------------------------------------

  /**
   * Subscribe to a channel or a pattern. The subscription lives until
   * unsubscribe(), across reconnects.
   */
  subscribe(channel, opts = {}) {
    if (typeof channel !== 'string' || !channel) throw new HeraldError(ErrorCodes.BAD_ARGUMENT, 'channel must be a non-empty string');
    if (this._subs.has(channel)) {
      throw new HeraldError(ErrorCodes.ALREADY_SUBSCRIBED, `already subscribed to ${channel} (use getSubscription)`);
    }
    const s = new Subscription(this, channel, opts);
    s._active = true;
    this._subs.set(channel, s);
    s.on('publication', (ev) => this.emit('publication', ev));
    if (this.state === 'connected') this._sendSubscribe(s);
    else s._setSubscribing();
    return s;
  }

  getSubscription(channel) {
    return this._subs.get(channel) || null;
  }

  subscriptions() {
    return Array.from(this._subs.values());
  }

  async _sendSubscribe(s) {
    const t = this._t;
    s._setSubscribing();
    let params;
    try {
      params = await s._params();
    } catch (e) {
      s.emit('error', new HeraldError(ErrorCodes.TOKEN, `subscription token for ${s.channel}`, { detail: e && e.message, temporary: true }));
      return;
    }
    if (t !== this._t || !s._active || this.state !== 'connected') return;
    const recovering = !!params.recover;
    let res;
    try {
      res = await this._call('subscribe', params, { transport: t });
    } catch (e) {
      if (!s._active || t !== this._t) return;
      if (e.code === 105) { // the server already has it (a token's channels): keep it
        s._onResult({ channel: s.channel, epoch: s.epoch, offset: s.offset }, false);
        return;
      }
      if (e.code === 109 && s.getToken && !s._tokenRetried) {
        s._tokenRetried = true;
        s.token = null;
        this._sendSubscribe(s);
        return;
      }
      s.emit('error', e);
      if (e.temporary) {
        clearTimeout(s._retryTimer);
        s._retryTimer = setTimeout(() => { if (s._active && this.state === 'connected' && t === this._t) this._sendSubscribe(s); },
          this._backoff.ceiling(1) + 1000 * this.options.random());
        return;
      }
      if (e instanceof ReplyError) this._unsubscribe(s, e.code, e.message, false);
      return;
    }
    if (!s._active || t !== this._t) return;
    s._onResult(res, recovering);
  }

  _unsubscribe(s, code, reason, sendCommand) {
    if (!s._active) return;
    s._active = false;
    clearTimeout(s._retryTimer);
    if (this._subs.get(s.channel) === s) this._subs.delete(s.channel);
    const wasOn = s.state !== 'unsubscribed';
    s.state = 'unsubscribed';
    if (sendCommand && this.state === 'connected') {
      this._call('unsubscribe', { channel: s.channel }).catch(() => {});
    }
    if (wasOn || sendCommand) s.emit('unsubscribed', { channel: s.channel, code, reason });
  }

  // ---- publish, history, presence ----------------------------------------------

  /**
   * Publish data to a channel. Resolves with {offset, epoch} once the server
   * acknowledged it. While offline it waits in the queue (at most maxQueued).
   * @param {string} channel
   * @param {unknown} data any JSON value
   * @param {{idempotencyKey?: string}} [opts]
   */
  publish(channel, data, opts = {}) {
    return new Promise((resolve, reject) => {
      if (typeof channel !== 'string' || !channel) {
        reject(new HeraldError(ErrorCodes.BAD_ARGUMENT, 'channel must be a non-empty string'));
        return;
      }
      if (this.state !== 'connected' && this._outbox.length >= this.options.maxQueued) {
        reject(new QueueFullError(this.options.maxQueued));
        return;
      }
      const key = opts.idempotencyKey || `${this._keyPrefix}-${++this._keyCounter}`;
      const entry = { channel, data, key, id: 0, resolve, reject };
      this._outbox.push(entry);
      if (this.state === 'connected' && !this._hold) this._sendPublish(entry);
    });
  }

  /** Publications waiting for the connection or for their acknowledgement. */
  get queued() {
    return this._outbox.length;
  }

  _sendPublish(e) {
    const id = this._nextId++;
    e.id = id;
    this._pending.set(id, { resolve: null, reject: null, timer: null, entry: e, method: 'publish' });
    this._enqueue({ id, publish: { channel: e.channel, data: e.data, idempotency_key: e.key } });
  }

  _onPublishReply(e, m) {
    const i = this._outbox.indexOf(e);
    if (i >= 0) this._outbox.splice(i, 1);
    if (m.error) e.reject(new ReplyError(m.error));
    else e.resolve(m.result || {});
  }

  /** One page (docs/protocol.md, history): `since` / `before` ({offset, epoch}) bound the offsets,
   * `sinceTime` (unix ms) the publish time. When more matched, the result has `more: true` and
   * `next`: ask again with `since: next` (forward) or `before: next` (`reverse: true`).
   * @returns {Promise<{epoch: string, offset: number, publications: {offset: number, data: unknown}[], more?: boolean, next?: {offset: number, epoch: string}}>} */
  history(channel, { limit, reverse, since, before, sinceTime } = {}) {
    const p = { channel };
    if (limit !== undefined) p.limit = limit;
    if (reverse) p.reverse = true;
    if (since) p.since = since;
    if (before) p.before = before;
    if (sinceTime !== undefined) p.since_time = sinceTime;
    return this._callConnected('history', p);
  }

  /** Every page of a history read, following `next` (as `since`, or `before` with `reverse`):
   * `for await (const page of client.historyPages(ch, {limit: 100, reverse: true})) ...` */
  async *historyPages(channel, opts = {}) {
    let q = { ...opts };
    for (;;) {
      const page = await this.history(channel, q);
      yield page;
      if (!page.more || !page.next) return;
      q = { ...q, [q.reverse ? 'before' : 'since']: page.next };
    }
  }

  /** @returns {Promise<{clients: Record<string, {client: string, user: string, info?: unknown}>}>} */
  presence(channel) {
    return this._callConnected('presence', { channel });
  }

  /** @returns {Promise<{num_clients: number, num_users: number}>} */
  presenceStats(channel) {
    return this._callConnected('presence_stats', { channel });
  }

  /** Call the application's backend through Herald (the rpc proxy hook, docs/backend.md).
   * Resolves with the backend's `data`; its `error` rejects as a ReplyError with its code.
   * @returns {Promise<unknown>} */
  async rpc(method, data) {
    const res = await this._callConnected('rpc', data === undefined ? { method } : { method, data });
    return res.data;
  }

  /** Round trip time to the server in ms. */
  async ping() {
    const t0 = Date.now();
    await this._callConnected('ping', {});
    return Date.now() - t0;
  }
}
