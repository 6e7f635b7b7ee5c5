#!/usr/bin/env python3
"""Bounded resources (issue 12, items 3 and 5): unfinished WebSocket
messages and retained history.

- A compressed message that inflates far past its wire size and is never
  finished: /ws and /ws/raw accept websocket.max_message_size (1 MiB), so the
  deflate attack is closed with 1009 and the server's RSS stays flat.
- websocket.message_timeout: a message dripped a byte at a time (which keeps
  the idle timer happy) is closed with 1008 when its deadline passes.
- websocket.max_partial_bytes: the worker's unfinished messages share a
  budget; the connection whose message would pass it is closed with 1013,
  the others keep theirs.
- channels.max_history_bytes: history of the whole node is bounded; the
  oldest is evicted first, /api/info shows the bytes held and the
  evictions, and a client recovering from an evicted range gets
  recovered=false, never a partial replay.
- limits.channels_per_connection: channels a client creates per second.

Each attack runs next to a well-behaved client on the same worker
(Prober, --workers 1) whose /health p99 must stay under PROBE_P99.
"""
import json
import os
import time
import zlib

from emu_client import Poller
from herald_native import ApiTestCase, Native, check_error, run
from herald_testlib import OP_CONT, OP_PING, OP_PONG, OP_TEXT, SANITIZE, SLOW, HeraldTestCase, PeakSampler, Prober, \
    RawWS, main, proc_rss_bytes

MiB = 1 << 20
DEFLATE = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
PROBE_P99 = 0.25 * SLOW   # documented in docs/security.md ("Resource bounds")
# Under ASan freed memory waits in a quarantine (256 MiB by default) before
# it is reused, which RSS would count: keep it small for the RSS bounds.
ASAN_ENV = {"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:quarantine_size_mb=4"} if SANITIZE else None


def deflate_unfinished(nbytes, fill=b" "):
    """A raw-deflate stream of `nbytes` of `fill`, sync-flushed (so the server
    can inflate all of it) but not finished: the first frame of a message
    that never ends."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = fill * MiB
    out = []
    left = nbytes
    while left:
        n = min(left, len(chunk))
        out.append(z.compress(chunk[:n]))
        left -= n
    out.append(z.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(out)


def ws_open(case, path="/ws", deflate=True):
    """A raw WebSocket to the test's server, closed at the end of the test."""
    w = RawWS.connect(case.server.addr, path=path, extensions=DEFLATE if deflate else None)
    case.addCleanup(w.close_socket)
    if deflate:
        assert w.deflate, "server did not accept permessage-deflate"
    return w


def still_open(w, timeout=2.0):
    """The connection is served: a ping gets its pong."""
    w.send_frame(OP_PING, b"alive?")
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        f = w.recv_frame(max(0.01, deadline - time.monotonic()) / SLOW)
        if f.opcode == OP_PONG and f.payload == b"alive?":
            return True
    return False


class TestDeflateAttack(HeraldTestCase):
    """Item 3: connections each send ~15 KB that inflates to 15 MiB of an
    unfinished message, then hold."""
    server_workers = 1
    server_env = ASAN_ENV

    def test_unfinished_compressed_messages_are_refused(self):
        srv = self.server
        wire = deflate_unfinished(15 * MiB)
        self.assertLess(len(wire), 40 * 1024)
        conns = [ws_open(self) for _ in range(20)]
        base = proc_rss_bytes(srv.proc.pid)
        with Prober(srv.addr, pid=srv.proc.pid) as probe, PeakSampler(srv.proc.pid) as peak:
            for w in conns:
                w.send_frame(OP_TEXT, wire, fin=False, rsv1=True)
            closes = []
            for w in conns:   # (a server without the bound holds them: then waiting once is enough)
                try:
                    closes.append(w.expect_close(1009, timeout=5 if all(closes) else 0.2).payload)
                except AssertionError:
                    closes.append(None)
            time.sleep(0.2)
        grown = peak.peak_rss - base
        print(f"\n  deflate attack: 20 x {len(wire)} B -> 15 MiB each: peak RSS +{grown / MiB:.1f} MiB, "
              f"{sum(1 for x in closes if x)} closed 1009, {probe.describe()}", flush=True)
        for payload in closes:
            self.assertIsNotNone(payload, "an unfinished 15 MiB message was held, not closed with 1009")
            self.assertIn(b"too big", payload)
        self.assertLess(grown, 48 * MiB)
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), PROBE_P99, probe.describe())

    def test_raw_endpoint_has_the_same_limit(self):
        w = ws_open(self, "/ws/raw?channel=bounds")
        w.send_frame(OP_TEXT, deflate_unfinished(2 * MiB), fin=False, rsv1=True)
        w.expect_close(1009, timeout=5)

    def test_echo_keeps_a_large_limit(self):
        # /ws/echo (conformance) keeps websocket.echo_max_message_size (16 MiB)
        w = ws_open(self, "/ws/echo")
        msg = b"x" * (2 * MiB)
        w.send_compressed(OP_TEXT, msg, fragments=3)
        op, got = w.recv_message(timeout=10)
        self.assertEqual((op, len(got)), (OP_TEXT, len(msg)))


class TestMessageTimeout(HeraldTestCase):
    """Item 3: a fragmented message must be finished within
    websocket.message_timeout, however slowly it drips in."""
    server_args = ("--websocket.message-timeout", "1s")
    server_workers = 1

    def test_dripping_message_hits_the_deadline(self):
        w = ws_open(self, deflate=False)
        w.send_frame(OP_TEXT, b"[", fin=False)
        t0 = time.monotonic()
        closed = None
        while time.monotonic() - t0 < 4 * SLOW:
            w.send_frame(OP_CONT, b" ", fin=False)   # a byte now and then: the idle timer never fires
            try:
                f = w.recv_frame(0.2)
            except (TimeoutError, OSError):
                continue
            if f.opcode == 8:
                closed = f
                break
        self.assertIsNotNone(closed, "no close frame: the dripping message was held past its deadline")
        self.assertEqual(int.from_bytes(closed.payload[:2], "big"), 1008)
        self.assertIn(b"not completed in time", closed.payload)
        self.assertLess(time.monotonic() - t0, 3 * SLOW)

    def test_a_finished_message_is_not_affected(self):
        w = ws_open(self, "/ws/echo", deflate=False)
        for _ in range(3):
            w.send_frame(OP_TEXT, b"ab", fin=False)
            time.sleep(0.4)
            w.send_frame(OP_CONT, b"cd", fin=True)
            self.assertEqual(w.recv_message(timeout=5), (OP_TEXT, b"abcd"))
        self.assertTrue(still_open(w))


class TestPartialBudget(HeraldTestCase):
    """Item 3: the unfinished messages of a worker share
    websocket.max_partial_bytes; the connection that would pass it is
    closed with 1013, the others keep theirs."""
    server_args = ("--websocket.max-partial-bytes", "4MiB")
    server_workers = 1

    def test_budget_closes_the_newcomer_only(self):
        srv = self.server
        wire = deflate_unfinished(900 * 1024)
        conns = [ws_open(self) for _ in range(8)]
        refused, kept = [], []
        for w in conns:
            w.send_frame(OP_TEXT, wire, fin=False, rsv1=True)
            try:
                f = w.recv_frame(0.5)
            except (TimeoutError, OSError):
                kept.append(w)
                continue
            self.assertEqual(f.opcode, 8, f)
            self.assertEqual(int.from_bytes(f.payload[:2], "big"), 1013, f)
            self.assertIn(b"retry later", f.payload)
            refused.append(w)
        self.assertGreaterEqual(len(kept), 2)
        self.assertGreaterEqual(len(refused), 3)
        for w in kept:   # the others are untouched
            self.assertTrue(still_open(w))
        # once they go, the budget is free again
        for w in kept:
            w.close_socket()
        time.sleep(0.3 * SLOW)
        w = ws_open(self)
        w.send_frame(OP_TEXT, wire, fin=False, rsv1=True)
        self.assertTrue(still_open(w))


def node_info(api):
    return api.call("info")["nodes"][0]


class TestHistoryBudget(ApiTestCase):
    """Item 5: an anonymous client publishing 60 KB x 20 to each of 60
    channels (72 MB) against an 8 MiB node-wide history budget."""
    server_args = ApiTestCase.server_args + ("--channels.max-history-bytes", "8MiB",
                                             "--channels.publish", "anyone")  # client publish is opt-in
    server_workers = 1
    server_env = ASAN_ENV
    CHANNELS, PUBS, SIZE = 60, 20, 60000

    def test_history_attack_is_bounded_and_recovery_stays_honest(self):
        srv = self.server
        victim = "victim"
        for i in range(3):
            self.api.publish(victim, {"n": i})

        async def go():
            c = await Native.open(srv)
            sub = await c.result("subscribe", {"channel": victim})
            epoch, offset = sub["epoch"], sub["offset"]
            self.assertEqual(offset, 3)
            await c.close()
            data = "x" * self.SIZE
            base = proc_rss_bytes(srv.proc.pid)
            attacker = await Native.open(srv)
            with Prober(srv.addr, pid=srv.proc.pid) as probe, PeakSampler(srv.proc.pid) as peak:
                for p in range(self.PUBS):
                    for ch in range(self.CHANNELS):
                        await attacker.result("publish", {"channel": f"flood{ch}", "data": data})
            await attacker.close()
            grown = peak.peak_rss - base
            info = node_info(self.api)
            print(f"\n  history attack: {self.CHANNELS} channels x {self.PUBS} x {self.SIZE} B "
                  f"({self.CHANNELS * self.PUBS * self.SIZE / MiB:.0f} MiB published): peak RSS +{grown / MiB:.1f} MiB, "
                  f"history_bytes {info.get('history_bytes', -1) / MiB:.1f} MiB, evictions {info.get('history_evictions')}, "
                  f"probe p99 {probe.p99() * 1000:.1f} ms", flush=True)
            self.assertLessEqual(info["history_bytes"], 8 * MiB)
            self.assertGreater(info["history_evictions"], 0)
            self.assertGreaterEqual(info["channels"], self.CHANNELS + 1)
            self.assertLess(grown, 40 * MiB)
            self.assertEqual(probe.failures, 0)
            self.assertLess(probe.p99_less_wait(), PROBE_P99, probe.describe())

            # the victim's history (published least recently) was evicted: its
            # recovery is refused, never a partial replay
            for i in range(2):
                self.api.publish(victim, {"after": i})
            c = await Native.open(srv)
            r = await c.result("subscribe", {"channel": victim, "recover": True, "epoch": epoch, "offset": 2})
            self.assertIs(r.get("recovered"), False, r)
            self.assertEqual(r["offset"], 5)
            # a recovery from what is left is complete
            r = await c.result("subscribe", {"channel": "flood59", "recover": True, "epoch": "",
                                             "offset": self.PUBS - 1})
            self.assertIs(r.get("recovered"), True, r)
            self.assertEqual([p["offset"] for p in r.get("publications", [])], [self.PUBS])
            await c.close()
        run(go())


class TestChannelCreationRate(ApiTestCase):
    """Item 5: limits.channels_per_connection bounds the channels one
    connection brings into existence (publish, subscribe, history)."""
    server_args = ApiTestCase.server_args + ("--limits.channels-per-connection", "5",
                                             "--limits.channel-burst", "10",
                                             "--channels.publish", "anyone")  # client publish is opt-in

    def test_new_channels_are_rate_limited(self):
        async def go():
            c = await Native.open(self.server)
            for i in range(10):
                await c.result("publish", {"channel": f"rate{i}", "data": i})
            err = await c.error("publish", {"channel": "rate10", "data": 1}, code=111)
            check_error(err, 111)
            self.assertIn("channel creation rate limit", err.get("message", "") + str(err))
            # existing channels are not limited
            for i in range(10):
                await c.result("publish", {"channel": f"rate{i}", "data": "again"})
            await c.error("subscribe", {"channel": "rate-new-sub"}, code=111)
            await c.error("history", {"channel": "rate-new-hist"}, code=111)
            await c.result("subscribe", {"channel": "rate3"})
            # the server API is a trusted backend: exempt
            self.api.publish("rate-api", 1)
            # tokens come back at 5/s
            time.sleep(0.5 * SLOW)
            await c.result("publish", {"channel": "rate11", "data": 1})
            await c.close()
        run(go())

    def test_http_emulation_goes_through_the_same_limit(self):
        p = Poller(self.server)
        self.addCleanup(p.close)
        p.open()
        p.command("connect")
        ids = [p.command("publish", {"channel": f"emu{i}", "data": i}) for i in range(11)]
        replies = [p.wait_reply(cid) for cid in ids]
        self.assertTrue(all("result" in r for r in replies[:10]), replies)
        self.assertEqual(replies[10]["error"]["code"], 111, replies[10])
        self.assertIs(replies[10]["error"].get("temporary"), True, replies[10])


if __name__ == "__main__":
    main()
