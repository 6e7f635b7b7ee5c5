// patterns.test.mjs - isPattern() and matchPattern() against the table of
// cases the server's unit test runs too (tests/data/channel_patterns.json,
// read by tests/unit/test_channel_name.c), so the SDK routes a publication to
// a pattern subscription exactly when the server delivers it through one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isPattern, matchPattern } from '../src/index.js';

const table = JSON.parse(readFileSync(new URL('../../../tests/data/channel_patterns.json', import.meta.url), 'utf8'));

test('isPattern agrees with the server on every valid subscription name of the shared table', () => {
  const valid = table.patterns.filter(([, result]) => result === 'ok');
  assert.ok(valid.length >= 20);
  const wrong = valid.filter(([name, , want]) => isPattern(name) !== want).map(([name, , want]) => `${name}: ${want}`);
  assert.deepEqual(wrong, []);
});

test('matchPattern agrees with the server on every row of the shared table', () => {
  assert.ok(table.matches.length >= 40);
  const wrong = table.matches.filter(([p, name, want]) => matchPattern(p, name) !== want)
    .map(([p, name, want]) => `${p} ~ ${name}: ${want}`);
  assert.deepEqual(wrong, []);
});

test('the cases of issue 13: chat:* matches chat:room1, chat:*.usd is a pattern', () => {
  assert.equal(matchPattern('chat:*', 'chat:room1'), true);
  assert.equal(isPattern('chat:*.usd'), true);
  assert.equal(matchPattern('chat:*.usd', 'chat:btc.usd'), true);
});
