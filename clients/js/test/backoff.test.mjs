// backoff.test.mjs - reconnect delays: full jitter within [0, min(max, min*2^n)].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../src/index.js';

test('window grows as min*2^n and is capped at max', () => {
  const b = new Backoff({ minDelay: 100, maxDelay: 5000 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((n) => b.ceiling(n)), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  assert.equal(b.ceiling(5000), 5000, 'no overflow for huge attempt numbers');
});

test('delays stay inside the window (random at both ends and in between)', () => {
  for (const r of [0, 0.25, 0.5, 0.999999]) {
    const b = new Backoff({ minDelay: 100, maxDelay: 5000, random: () => r });
    for (let n = 0; n < 40; n++) {
      const ceil = b.ceiling(n);
      const d = b.next();
      assert.ok(d >= 0 && d <= ceil, `attempt ${n}: ${d} not in [0, ${ceil}] (random ${r})`);
      if (r === 0) assert.equal(d, 0);
      if (r > 0.99) assert.ok(d >= ceil * 0.99, `attempt ${n}: top of the window ${d} vs ${ceil}`);
    }
  }
});

test('full jitter spreads delays over the whole window', () => {
  const b = new Backoff({ minDelay: 1000, maxDelay: 1000 });
  const ds = Array.from({ length: 2000 }, () => b.next());
  assert.ok(Math.min(...ds) < 100, `smallest ${Math.min(...ds)}`);
  assert.ok(Math.max(...ds) > 900, `largest ${Math.max(...ds)}`);
  const mean = ds.reduce((a, x) => a + x, 0) / ds.length;
  assert.ok(mean > 400 && mean < 600, `mean ${mean} should be near 500`);
});

test('reset() starts over from the smallest window', () => {
  const b = new Backoff({ minDelay: 10, maxDelay: 1000, random: () => 0.999999 });
  for (let i = 0; i < 10; i++) b.next();
  assert.ok(b.next() > 900);
  b.reset();
  assert.ok(b.next() <= 10);
});

test('bad bounds are refused', () => {
  assert.throws(() => new Backoff({ minDelay: 100, maxDelay: 10 }), RangeError);
  assert.throws(() => new Backoff({ minDelay: -1 }), RangeError);
});
