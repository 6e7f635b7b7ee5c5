// subscription.js - one channel (or pattern) subscription of a Herald client.
//
// The client owns the connection; a Subscription keeps the channel's position
// (epoch + offset of the last publication delivered), so that after any drop
// the client can resubscribe with `recover` and get exactly what was missed.
// Publications are de-duplicated by offset (a pattern keeps one offset per
// concrete channel), and those arriving while a (re)subscribe is in flight
// are held until its reply so recovered ones come first, in order.
//
// Events: 'subscribing', 'subscribed', 'publication', 'join', 'leave',
// 'recovered', 'recovery_failed', 'unsubscribed', 'error'.

import { Emitter } from './emitter.js';
import { HeraldError, ErrorCodes } from './errors.js';

// Channel names and patterns, as the server reads them (src/hub/channel_name.c;
// docs/protocol.md "Channels"): the namespace is what comes before the first
// ':' that precedes the first '#', and stays literal; the rest is split on
// '.'; a wildcard is a whole segment of the rest: '*' matches exactly one
// segment, a final '>' one or more. Both sides run the same table of cases
// (tests/data/channel_patterns.json).

/** {ns, rest}: ns is null without a namespace; rest is the rest's '.'-segments. */
function splitName(s) {
  const hash = s.indexOf('#');
  const colon = (hash < 0 ? s : s.slice(0, hash)).indexOf(':');
  return colon < 0 ? { ns: null, rest: s.split('.') } : { ns: s.slice(0, colon), rest: s.slice(colon + 1).split('.') };
}

/** Whether a subscription name is a pattern: a `*` segment, or a final `>`, before any `#` (user lists are literal). */
export function isPattern(channel) {
  const hash = channel.indexOf('#');
  const { rest } = splitName(hash < 0 ? channel : channel.slice(0, hash));
  return rest.some((seg, i) => seg === '*' || (seg === '>' && hash < 0 && i === rest.length - 1));
}

/** Match a concrete channel against a pattern (both valid), as the server does. */
export function matchPattern(pattern, channel) {
  const p = splitName(pattern);
  const c = splitName(channel);
  if (p.ns !== c.ns) return false;
  for (let i = 0; i < p.rest.length; i++) {
    if (p.rest[i] === '>' && i === p.rest.length - 1) return c.rest.length > i;
    if (i >= c.rest.length) return false;
    if (p.rest[i] !== '*' && p.rest[i] !== c.rest[i]) return false;
  }
  return p.rest.length === c.rest.length;
}

export class Subscription extends Emitter {
  /**
   * @param {import('./client.js').Herald} client
   * @param {string} channel
   * @param {{recover?: boolean, token?: string, getToken?: Function, since?: {epoch: string, offset: number}, data?: unknown}} opts
   */
  constructor(client, channel, opts = {}) {
    super();
    this.client = client;
    this.channel = channel;
    this.pattern = isPattern(channel);
    this.recover = opts.recover !== false && !this.pattern;
    this.token = opts.token || null;
    this.getToken = opts.getToken || null;
    this.data = opts.data; // for the backend's subscribe hook (docs/backend.md); sent on every subscribe
    /** 'unsubscribed' | 'subscribing' | 'subscribed' */
    this.state = 'unsubscribed';
    this.epoch = opts.since ? opts.since.epoch : null;
    this.offset = opts.since ? opts.since.offset : null;
    this._offsets = new Map(); // pattern: concrete channel -> last offset
    this._buffer = [];
    this._active = false; // wanted by the application
    this._retryTimer = null;
    this._tokenRetried = false;
  }

  /** Resolves once subscribed (rejects on a permanent error or after timeoutMs). */
  ready(timeoutMs = 10000) {
    if (this.state === 'subscribed') return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      const done = (fn, v) => { clearTimeout(timer); offOk(); offErr(); offUnsub(); fn(v); };
      const timer = setTimeout(() => done(reject, new HeraldError(ErrorCodes.TIMEOUT,
        `timeout: subscribe ${this.channel}`, { temporary: true })), timeoutMs);
      let lastError = null;
      const offOk = this.on('subscribed', () => done(resolve, this));
      const offErr = this.on('error', (e) => { lastError = e; });
      // A refused subscribe ends the subscription: reject with the server's error.
      const offUnsub = this.on('unsubscribed', (ctx) => done(reject, lastError || new HeraldError(ErrorCodes.UNSUBSCRIBED,
        `unsubscribed from ${this.channel}: ${ctx.reason}`)));
    });
  }

  /** Stop receiving this channel (and forget it on reconnects). */
  unsubscribe() {
    this.client._unsubscribe(this, 0, 'unsubscribed by the client', true);
  }

  publish(data, opts) { return this.client.publish(this.channel, data, opts); }
  history(opts) { return this.client.history(this.channel, opts); }
  historyPages(opts) { return this.client.historyPages(this.channel, opts); }
  presence() { return this.client.presence(this.channel); }
  presenceStats() { return this.client.presenceStats(this.channel); }

  /** The position to store for a later `since` (null for patterns or before the first reply). */
  position() {
    return this.pattern || this.epoch === null ? null : { epoch: this.epoch, offset: this.offset };
  }

  // ---- used by the client ----------------------------------------------------

  async _params() {
    const p = { channel: this.channel };
    if (this.recover && this.epoch !== null && this.offset !== null) {
      p.recover = true;
      p.epoch = this.epoch;
      p.offset = this.offset;
    }
    if (!this.token && this.getToken) this.token = await this.getToken(this.channel);
    if (this.token) p.token = this.token;
    if (this.data !== undefined) p.data = this.data;
    return p;
  }

  _setSubscribing() {
    if (this.state === 'subscribing') return;
    this.state = 'subscribing';
    this._buffer = [];
    this.emit('subscribing', { channel: this.channel });
  }

  _onResult(result, recovering) {
    this.state = 'subscribed';
    this._tokenRetried = false;
    if (this.pattern || result.pattern) {
      this.emit('subscribed', { channel: this.channel, pattern: true });
      this._flushBuffer();
      return;
    }
    const prev = { epoch: this.epoch, offset: this.offset };
    const recovered = recovering && result.recovered === true;
    if (!recovered) this.offset = result.offset;
    this.epoch = result.epoch;
    this.emit('subscribed', {
      channel: this.channel, epoch: result.epoch, offset: result.offset,
      recoverable: !!result.recoverable, recovering, recovered,
    });
    if (recovering) {
      if (recovered) {
        const pubs = result.publications || [];
        for (const p of pubs) this._deliver({ channel: this.channel, ...p });
        if (result.offset > this.offset) this.offset = result.offset;
        this.emit('recovered', { channel: this.channel, publications: pubs.length, epoch: this.epoch, offset: this.offset });
      } else {
        this.emit('recovery_failed', {
          channel: this.channel, epoch: result.epoch, offset: result.offset,
          previousEpoch: prev.epoch, previousOffset: prev.offset,
        });
      }
    }
    this._flushBuffer();
  }

  _flushBuffer() {
    const b = this._buffer;
    this._buffer = [];
    for (const p of b) this._deliver(p);
  }

  /** A pub push for this subscription (held while subscribing). */
  _onPub(pub) {
    if (this.state === 'subscribing') {
      this._buffer.push(pub);
      return;
    }
    if (this.state === 'subscribed') this._deliver(pub);
  }

  _deliver(pub) {
    if (typeof pub.offset === 'number') {
      if (this.pattern) {
        const last = this._offsets.get(pub.channel);
        if (last !== undefined && pub.offset <= last) return; // duplicate
        this._offsets.set(pub.channel, pub.offset);
      } else {
        if (this.offset !== null && pub.offset <= this.offset) return; // duplicate
        this.offset = pub.offset;
      }
    }
    const ev = { channel: pub.channel || this.channel, offset: pub.offset, data: pub.data };
    if (pub.info !== undefined) ev.info = pub.info;
    this.emit('publication', ev);
  }
}
