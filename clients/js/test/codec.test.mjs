// codec.test.mjs - JSON lines and the built-in MessagePack codec, checked
// against the byte-exact examples of docs/protocol.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonCodec, msgpackCodec, msgpackEncode, msgpackDecodeAll } from '../src/index.js';

const hex = (s) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g).map((h) => parseInt(h, 16)));

test('JSON: one object per line, several per frame, blank lines skipped', () => {
  const frame = jsonCodec.encode([{ id: 1, connect: {} }, { id: 2, subscribe: { channel: 'news' } }]);
  assert.equal(frame, '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"news"}}');
  assert.deepEqual(jsonCodec.decode(`${frame}\n\n`), [{ id: 1, connect: {} }, { id: 2, subscribe: { channel: 'news' } }]);
  assert.throws(() => jsonCodec.decode('{"id":1'), SyntaxError);
});

test('MessagePack: the publish example of docs/protocol.md, byte for byte', () => {
  const bytes = msgpackCodec.encode([{ id: 1, publish: { channel: 'news', data: { text: 'hi' } } }]);
  assert.deepEqual(bytes, hex(`82 a2 69 64 01 a7 70 75 62 6c 69 73 68 82 a7 63 68 61 6e 6e 65 6c
    a4 6e 65 77 73 a4 64 61 74 61 81 a4 74 65 78 74 a2 68 69`));
  assert.equal(bytes.length, 41);
});

test('MessagePack: the reply example decodes; maps back to back', () => {
  const reply = hex(`82 a2 69 64 01 a6 72 65 73 75 6c 74 82 a6 6f 66 66 73 65 74 2d a5 65 70 6f 63 68
    b0 39 63 30 64 33 65 31 61 32 62 34 66 35 61 36 63`);
  assert.equal(reply.length, 44);
  assert.deepEqual(msgpackCodec.decode(reply), [{ id: 1, result: { offset: 45, epoch: '9c0d3e1a2b4f5a6c' } }]);
  const two = new Uint8Array([...reply, ...reply]);
  assert.equal(msgpackCodec.decode(two.buffer).length, 2);
});

test('MessagePack: round trip at every integer width boundary, floats, strings, nesting', () => {
  const ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER,
    -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, Number.MIN_SAFE_INTEGER];
  for (const n of ints) assert.equal(msgpackDecodeAll(msgpackEncode(n))[0], n, `int ${n}`);
  for (const f of [0.1, -2.5, 1e300, 5e-324]) assert.equal(msgpackDecodeAll(msgpackEncode(f))[0], f);
  for (const s of ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'y'.repeat(70000), 'é€😀']) {
    assert.equal(msgpackDecodeAll(msgpackEncode(s))[0], s);
  }
  const v = { a: [1, 'two', null, true, false, { b: [[]] }], big: Array.from({ length: 20 }, (_, i) => i),
    m: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])) };
  assert.deepEqual(msgpackDecodeAll(msgpackEncode(v))[0], v);
  assert.deepEqual(msgpackDecodeAll(msgpackEncode(2n ** 63n))[0], 2n ** 63n, 'uint64 beyond 2^53 stays exact as BigInt');
});

test('MessagePack: what Herald refuses is refused here too', () => {
  assert.throws(() => msgpackEncode(new Uint8Array(3)), /binary/);
  assert.throws(() => msgpackEncode(NaN), /NaN/);
  assert.throws(() => msgpackDecodeAll(new Uint8Array([0xc4, 0x01, 0x00])), /unsupported type 0xc4/);
  assert.throws(() => msgpackDecodeAll(new Uint8Array([0x82, 0xa1])), /truncated/);
  assert.throws(() => msgpackDecodeAll(new Uint8Array([0x81, 0x01, 0x01])), /key is not a string/);
  assert.throws(() => msgpackCodec.decode('text'), /text frame/);
  let deep = 1;
  for (let i = 0; i < 70; i++) deep = [deep];
  assert.throws(() => msgpackEncode(deep), /deeper than 64/);
});
