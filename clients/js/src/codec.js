// codec.js - frame codecs of the native protocol (docs/protocol.md).
//
// jsonCodec: a frame is newline-delimited JSON objects (text).
// msgpackCodec: a frame is MessagePack maps back to back (binary), spoken on
// WebSocket with the `herald.msgpack` subprotocol. The MessagePack encoder /
// decoder here is a small built-in one covering exactly the types Herald
// exchanges (nil, bool, int up to 64 bits, float 64, str, array, map); it
// refuses bin and ext as the server does. No dependency is needed; an
// application can still inject its own codec object with the same shape
// (name, binary, subprotocol, encode(array) -> frame, decode(frame) -> array).

export const jsonCodec = Object.freeze({
  name: 'json',
  binary: false,
  subprotocol: 'herald.json',
  /** @param {object[]} msgs */
  encode(msgs) {
    return msgs.map((m) => JSON.stringify(m)).join('\n');
  },
  /** @param {string} frame */
  decode(frame) {
    if (typeof frame !== 'string') frame = new TextDecoder().decode(frame);
    const out = [];
    for (const line of frame.split('\n')) {
      if (line.trim() === '') continue;
      out.push(JSON.parse(line));
    }
    return out;
  },
});

// ---- MessagePack -------------------------------------------------------------

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.len = 0;
  }
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }
  u8(v) { this.reserve(1); this.buf[this.len++] = v; }
  u16(v) { this.reserve(2); this.view.setUint16(this.len, v); this.len += 2; }
  u32(v) { this.reserve(4); this.view.setUint32(this.len, v); this.len += 4; }
  bytes(b) { this.reserve(b.length); this.buf.set(b, this.len); this.len += b.length; }
  result() { return this.buf.slice(0, this.len); }
}

function encodeValue(w, v, depth) {
  if (depth > 64) throw new RangeError('MessagePack: value nested deeper than 64 levels');
  if (v === null || v === undefined) { w.u8(0xc0); return; }
  switch (typeof v) {
    case 'boolean': w.u8(v ? 0xc3 : 0xc2); return;
    case 'number':
      if (Number.isSafeInteger(v)) { encodeInt(w, v); return; }
      if (!Number.isFinite(v)) throw new RangeError('MessagePack: NaN and infinities cannot be sent');
      w.u8(0xcb); w.reserve(8); w.view.setFloat64(w.len, v); w.len += 8; return;
    case 'bigint':
      if (v >= -(2n ** 63n) && v < 2n ** 64n) {
        w.u8(v < 0n ? 0xd3 : 0xcf); w.reserve(8);
        if (v < 0n) w.view.setBigInt64(w.len, v); else w.view.setBigUint64(w.len, v);
        w.len += 8; return;
      }
      throw new RangeError('MessagePack: bigint out of 64-bit range');
    case 'string': {
      const b = te.encode(v);
      if (b.length < 32) w.u8(0xa0 | b.length);
      else if (b.length < 0x100) { w.u8(0xd9); w.u8(b.length); }
      else if (b.length < 0x10000) { w.u8(0xda); w.u16(b.length); }
      else { w.u8(0xdb); w.u32(b.length); }
      w.bytes(b);
      return;
    }
    case 'object': {
      if (typeof v.toJSON === 'function') { encodeValue(w, v.toJSON(), depth); return; }
      if (Array.isArray(v)) {
        header(w, v.length, 0x90, 0xdc, 0xdd);
        for (const x of v) encodeValue(w, x === undefined ? null : x, depth + 1);
        return;
      }
      if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
        throw new TypeError('MessagePack: binary data cannot be published (send base64 in a string)');
      }
      const keys = Object.keys(v).filter((k) => v[k] !== undefined && typeof v[k] !== 'function');
      header(w, keys.length, 0x80, 0xde, 0xdf);
      for (const k of keys) { encodeValue(w, k, depth + 1); encodeValue(w, v[k], depth + 1); }
      return;
    }
    default:
      throw new TypeError(`MessagePack: cannot encode a ${typeof v}`);
  }
}

function header(w, n, fix, c16, c32) {
  if (n < 16) w.u8(fix | n);
  else if (n < 0x10000) { w.u8(c16); w.u16(n); }
  else { w.u8(c32); w.u32(n); }
}

function encodeInt(w, v) {
  if (v >= 0) {
    if (v < 0x80) w.u8(v);
    else if (v < 0x100) { w.u8(0xcc); w.u8(v); }
    else if (v < 0x10000) { w.u8(0xcd); w.u16(v); }
    else if (v < 0x100000000) { w.u8(0xce); w.u32(v); }
    else { w.u8(0xcf); w.reserve(8); w.view.setBigUint64(w.len, BigInt(v)); w.len += 8; }
  } else {
    if (v >= -32) w.u8(v & 0xff);
    else if (v >= -0x80) { w.u8(0xd0); w.reserve(1); w.view.setInt8(w.len, v); w.len += 1; }
    else if (v >= -0x8000) { w.u8(0xd1); w.reserve(2); w.view.setInt16(w.len, v); w.len += 2; }
    else if (v >= -0x80000000) { w.u8(0xd2); w.reserve(4); w.view.setInt32(w.len, v); w.len += 4; }
    else { w.u8(0xd3); w.reserve(8); w.view.setBigInt64(w.len, BigInt(v)); w.len += 8; }
  }
}

/** Encode one value as MessagePack bytes. */
export function msgpackEncode(value) {
  const w = new Writer();
  encodeValue(w, value, 0);
  return w.result();
}

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.p = 0;
  }
  need(n) {
    if (this.p + n > this.b.length) throw new RangeError('MessagePack: truncated data');
  }
  u8() { this.need(1); return this.b[this.p++]; }
  u16() { this.need(2); const x = this.v.getUint16(this.p); this.p += 2; return x; }
  u32() { this.need(4); const x = this.v.getUint32(this.p); this.p += 4; return x; }
  big(signed) {
    this.need(8);
    const x = signed ? this.v.getBigInt64(this.p) : this.v.getBigUint64(this.p);
    this.p += 8;
    // Numbers when exact, else BigInt (offsets never get there in practice).
    return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
  }
  str(n) {
    this.need(n);
    const s = td.decode(this.b.subarray(this.p, this.p + n));
    this.p += n;
    return s;
  }
}

function decodeValue(r, depth) {
  if (depth > 1024) throw new RangeError('MessagePack: nesting too deep');
  const t = r.u8();
  if (t < 0x80) return t;
  if (t >= 0xe0) return t - 0x100;
  if ((t & 0xf0) === 0x80) return decodeMap(r, t & 0x0f, depth);
  if ((t & 0xf0) === 0x90) return decodeArray(r, t & 0x0f, depth);
  if ((t & 0xe0) === 0xa0) return r.str(t & 0x1f);
  switch (t) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xca: { r.need(4); const x = r.v.getFloat32(r.p); r.p += 4; return x; }
    case 0xcb: { r.need(8); const x = r.v.getFloat64(r.p); r.p += 8; return x; }
    case 0xcc: return r.u8();
    case 0xcd: return r.u16();
    case 0xce: return r.u32();
    case 0xcf: return r.big(false);
    case 0xd0: { r.need(1); const x = r.v.getInt8(r.p); r.p += 1; return x; }
    case 0xd1: { r.need(2); const x = r.v.getInt16(r.p); r.p += 2; return x; }
    case 0xd2: { r.need(4); const x = r.v.getInt32(r.p); r.p += 4; return x; }
    case 0xd3: return r.big(true);
    case 0xd9: return r.str(r.u8());
    case 0xda: return r.str(r.u16());
    case 0xdb: return r.str(r.u32());
    case 0xdc: return decodeArray(r, r.u16(), depth);
    case 0xdd: return decodeArray(r, r.u32(), depth);
    case 0xde: return decodeMap(r, r.u16(), depth);
    case 0xdf: return decodeMap(r, r.u32(), depth);
    default:
      throw new TypeError(`MessagePack: unsupported type 0x${t.toString(16)} (bin and ext are not used by Herald)`);
  }
}

function decodeArray(r, n, depth) {
  const a = new Array(n);
  for (let i = 0; i < n; i++) a[i] = decodeValue(r, depth + 1);
  return a;
}

function decodeMap(r, n, depth) {
  const o = {};
  for (let i = 0; i < n; i++) {
    const k = decodeValue(r, depth + 1);
    if (typeof k !== 'string') throw new TypeError('MessagePack: map key is not a string');
    const val = decodeValue(r, depth + 1);
    if (k === '__proto__') Object.defineProperty(o, k, { value: val, enumerable: true, writable: true });
    else o[k] = val;
  }
  return o;
}

/** Decode every value in bytes (values written back to back). */
export function msgpackDecodeAll(bytes) {
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  else if (!(bytes instanceof Uint8Array)) bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(bytes);
  const out = [];
  while (r.p < bytes.length) out.push(decodeValue(r, 0));
  return out;
}

export const msgpackCodec = Object.freeze({
  name: 'msgpack',
  binary: true,
  subprotocol: 'herald.msgpack',
  encode(msgs) {
    const w = new Writer();
    for (const m of msgs) encodeValue(w, m, 0);
    return w.result();
  },
  decode(frame) {
    if (typeof frame === 'string') throw new TypeError('MessagePack session received a text frame');
    return msgpackDecodeAll(frame);
  },
});
