// emitter.test.mjs - on / once / off / emit, and a throwing listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Emitter } from '../src/index.js';

test('on, once, off and the returned remover', () => {
  const e = new Emitter();
  const got = [];
  const off = e.on('x', (v) => got.push(`a${v}`));
  e.once('x', (v) => got.push(`b${v}`));
  const c = (v) => got.push(`c${v}`);
  e.on('x', c);
  assert.equal(e.emit('x', 1), true);
  e.off('x', c);
  e.emit('x', 2);
  off();
  assert.equal(e.emit('x', 3), false);
  assert.deepEqual(got, ['a1', 'b1', 'c1', 'a2']);
  assert.equal(e.listenerCount('x'), 0);
});

test('once listener removable before it fires; off(event) removes all', () => {
  const e = new Emitter();
  let n = 0;
  const f = () => n++;
  e.once('y', f);
  e.off('y', f);
  e.emit('y');
  e.on('z', f); e.on('z', f);
  e.off('z');
  e.emit('z');
  assert.equal(n, 0);
});

test('a listener that throws does not stop the others; the error goes to reportError', () => {
  const e = new Emitter();
  const seen = [];
  const reported = [];
  const had = Object.prototype.hasOwnProperty.call(globalThis, 'reportError');
  const old = globalThis.reportError;
  globalThis.reportError = (err) => reported.push(err);
  try {
    e.on('x', () => { throw new Error('boom'); });
    e.on('x', () => seen.push('second'));
    e.emit('x');
  } finally {
    if (had) globalThis.reportError = old; else delete globalThis.reportError;
  }
  assert.deepEqual(seen, ['second']);
  assert.equal(reported.length, 1);
  assert.equal(reported[0].message, 'boom');
});

test('a listener added during emit is not called for that emit', () => {
  const e = new Emitter();
  let n = 0;
  e.on('x', () => e.on('x', () => n++));
  e.emit('x');
  assert.equal(n, 0);
  e.emit('x');
  assert.equal(n, 1);
});
