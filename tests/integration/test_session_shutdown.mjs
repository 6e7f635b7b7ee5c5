// test_session_shutdown.mjs - herald shuts down cleanly (exit 0, nothing from
// the sanitizers) while long-polling and HTTP-streaming sessions are still
// subscribed to channels whose namespace has join/leave: freeing such a
// session at exit must not publish its `leave` to worker loops that are
// already gone (found by the SDK's browser tests under ASan: a
// heap-use-after-free in hr_loop_wake). Meaningful on the sanitizer build
// (ctest in build-asan, `make test-asan`), where the use-after-free aborts.
//
// Run: node --test tests/integration/test_session_shutdown.mjs  (HERALD_BIN, HERALD_SANITIZE)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, SLOW, withTimeout } from './lib/herald.mjs';

const T = (ms) => ms * SLOW;

async function send(h, session, lines) {
  const r = await fetch(`${h.url}/poll/send?session=${session}`, { method: 'POST', body: lines.map((l) => JSON.stringify(l)).join('\n') });
  assert.equal(r.status, 202, await r.text());
}

test('SIGTERM with poll and stream sessions subscribed in a join/leave namespace: exit 0', { timeout: T(30000) }, async () => {
  const h = await startHerald(['--namespace.chat.join-leave', 'true', '--workers', '2']);
  try {
    const sessions = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${h.url}/poll/open`, { method: 'POST' });
      const { session } = await r.json();
      await send(h, session, [{ id: 1, connect: {} }, { id: 2, subscribe: { channel: 'chat:room' } }, { id: 3, subscribe: { channel: `chat:own${i}` } }]);
      sessions.push(session);
    }
    // a stream too, left open
    const ac = new AbortController();
    const stream = await fetch(`${h.url}/stream`, { signal: ac.signal });
    const reader = stream.body.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const { session: ss } = JSON.parse(first.split('\n')[0]);
    await fetch(`${h.url}/stream/send?session=${ss}`, { method: 'POST', body: '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"chat:room"}}' });
    // the subscriptions are in place: presence shows all five
    const p = await fetch(`${h.url}/poll?session=${sessions[0]}&cursor=0`);
    assert.equal(p.status, 200);
    const res = await withTimeout((async () => {
      for (;;) {
        const r = await fetch(`${h.url}/poll/send?session=${sessions[0]}`, { method: 'POST', body: '{"id":9,"presence_stats":{"channel":"chat:room"}}' });
        assert.equal(r.status, 202);
        const q = await (await fetch(`${h.url}/poll?session=${sessions[0]}&cursor=0`)).json();
        const m = q.messages.find((x) => x.id === 9);
        if (m && m.result.num_clients === 5) return m.result;
        await new Promise((r2) => setTimeout(r2, 50));
      }
    })(), T(10000), 'five clients in chat:room');
    assert.equal(res.num_clients, 5);
    const exit = await h.stop();
    ac.abort();
    assert.deepEqual(exit, { code: 0, signal: null }, `herald exit\n${h.tail(60)}`);
    assert.doesNotMatch(h.stderr(), /Sanitizer|runtime error/, h.tail(60));
  } finally {
    await h.stop();
  }
});
