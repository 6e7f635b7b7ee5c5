#!/usr/bin/env python3
"""test_durable_crash - kill -9 while publishers run at full speed, and
recovery across a restart on every transport (docs/durability.md).

The kill loops: several threads, each on its own API connection, publish
as fast as they can to a few channels; the server is SIGKILLed at a random
moment, restarted on the same --data-dir, and the test checks the promise
of docs/durability.md's table for kill -9: every ACKNOWLEDGED publication
(an offset in the API's answer) is in history at that offset, the
offsets are 1..N without a gap or a duplicate, the epoch never changes,
and publishing continues at N + 1. Unacknowledged publications may or may
not be there (the promise says nothing about them), so only their place
in the gap-free sequence is checked. It holds for `always` (fdatasync
before the answer) and for `interval` and `never` (write(2) to the page
cache before the answer, which a process crash cannot take back).
"""

import os
import random
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, main  # noqa: E402
from herald_native import API_KEY, Api  # noqa: E402
from emu_client import Poller  # noqa: E402
from test_sse import SSE, parse_id, sse_path  # noqa: E402
import test_durable  # noqa: E402

BASE = ("--api-key", API_KEY, "--channels.publish", "anyone",
        "--channels.history-size", "1000000", "--channels.history-ttl", "0")
CHANNELS = ("crash-a", "crash-b", "crash-c")
PUBLISHERS = 4
KILLS = 5


class Publisher(threading.Thread):
    """Publishes {"p": id, "i": n} round-robin over CHANNELS until the
    connection fails (the server was killed); records what was acknowledged."""

    def __init__(self, srv, pid):
        super().__init__(daemon=True)
        self.srv, self.pid = srv, pid
        self.acked = []  # (channel, offset, epoch, data)
        self.seq = 0

    def run(self):
        api = Api(self.srv, timeout=5 * SLOW)
        try:
            while True:
                ch = CHANNELS[self.seq % len(CHANNELS)]
                data = {"p": self.pid, "i": self.seq}
                self.seq += 1
                r = api.publish(ch, data)
                self.acked.append((ch, r["offset"], r["epoch"], data))
        except Exception:
            pass  # killed: the publication in flight was not acknowledged
        finally:
            api.close()


def whole_history(srv, ch):
    """Every publication of ch, oldest first, paging with since = next."""
    api = Api(srv)
    try:
        pubs, q = [], {"channel": ch, "limit": 1000}
        while True:
            h = api.call("history", q)
            pubs += h["publications"]
            if not h.get("more"):
                return h["epoch"], h["offset"], pubs
            q["since"] = h["next"]
    finally:
        api.close()


class DurableCrashTest(test_durable.DataDirCase):
    base_args = BASE

    def kill_loop(self, fsync):
        rng = random.Random(os.getpid())
        acked = {}  # (channel, offset) -> (epoch, data)
        epochs = {}
        total = 0
        srv = self.start("--engine.fsync", fsync)
        for round_ in range(KILLS):
            pubs = [Publisher(srv, round_ * PUBLISHERS + k) for k in range(PUBLISHERS)]
            for p in pubs:
                p.start()
            time.sleep(rng.uniform(0.3, 0.8) * SLOW)
            srv.kill()  # SIGKILL while every publisher is mid-request
            for p in pubs:
                p.join(10 * SLOW)
                self.assertFalse(p.is_alive())
                for ch, off, ep, data in p.acked:
                    self.assertNotIn((ch, off), acked, "an offset was acknowledged twice")
                    acked[(ch, off)] = (ep, data)
                    self.assertEqual(epochs.setdefault(ch, ep), ep, "the epoch changed across a restart")
                total += len(p.acked)
            srv = self.start("--engine.fsync", fsync)
            self.check_history(srv, acked, epochs, round_)
        self.assertGreater(total, 50 * KILLS / SLOW, "the publishers hardly published")
        api = Api(srv)
        for ch in CHANNELS:  # offsets continue after the last restart
            _, last, _ = whole_history(srv, ch)
            self.assertEqual(api.publish(ch, {"after": True}), {"offset": last + 1, "epoch": epochs[ch]})
        api.close()

    def check_history(self, srv, acked, epochs, round_):
        for ch in CHANNELS:
            epoch, last, pubs = whole_history(srv, ch)
            if ch in epochs:
                self.assertEqual(epoch, epochs[ch], f"{ch}: a new epoch after kill #{round_ + 1}")
            offs = [p["offset"] for p in pubs]
            self.assertEqual(offs, list(range(1, last + 1)), f"{ch}: gap, duplicate or disorder")
            seen = {(p["data"]["p"], p["data"]["i"]) for p in pubs}
            self.assertEqual(len(seen), len(pubs), f"{ch}: a publication stored twice")
            by_off = {p["offset"]: p["data"] for p in pubs}
            for (c, off), (_, data) in acked.items():
                if c == ch:
                    self.assertEqual(by_off.get(off), data, f"{ch}: acknowledged offset {off} lost after kill -9")

    def test_kill9_loop_fsync_always_keeps_every_acknowledged_publication(self):
        self.kill_loop("always")

    def test_kill9_loop_fsync_interval_keeps_every_acknowledged_publication(self):
        # docs/durability.md: with interval a publish is answered after write(2);
        # a crash of the process (not of the machine) loses nothing acknowledged.
        self.kill_loop("interval")

    def test_kill9_loop_fsync_never_keeps_every_acknowledged_publication(self):
        # never syncs, but answers after write(2) as interval does: the same promise for kill -9
        self.kill_loop("never")

    # -- recovery across a kill -9 on the HTTP transports (WebSocket: test_durable.py) --

    def publish(self, srv, ch, datas):
        api = Api(srv)
        try:
            return [api.publish(ch, d) for d in datas]
        finally:
            api.close()

    def test_sse_last_event_id_resumes_across_a_kill9(self):
        srv = self.start()
        ch = "sse-crash"
        s = SSE(srv, sse_path(ch))
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200)
        self.assertEqual(s.next().type, "connected")
        first = self.publish(srv, ch, [{"n": i} for i in range(1, 4)])
        evs = [s.next() for _ in range(3)]
        self.assertEqual([e.json() for e in evs], [{"n": i} for i in range(1, 4)])
        last = evs[-1].last_id
        srv.kill()
        srv = self.start()
        self.publish(srv, ch, [{"n": i} for i in range(4, 9)])  # missed while away
        r = SSE(srv, sse_path(ch), headers={"Last-Event-ID": last})
        self.addCleanup(r.close)
        self.assertEqual(r.status, 200)
        ev = r.next()
        self.assertEqual(ev.type, "connected", ev)
        missed = [r.next() for _ in range(5)]
        self.assertEqual([(e.type, e.json()) for e in missed], [("message", {"n": i}) for i in range(4, 9)])
        self.assertEqual([[o for _, o in parse_id(e.last_id)] for e in missed], [[i] for i in range(4, 9)])
        self.publish(srv, ch, [{"n": 9}])
        ev = r.next()
        self.assertEqual((ev.json(), parse_id(ev.last_id)[0][1]), ({"n": 9}, 9), "then live, nothing twice")
        self.assertEqual(first[0]["offset"], 1)

    def test_long_poll_recovers_across_a_kill9(self):
        srv = self.start()
        ch = "poll-crash"
        p = Poller(srv)
        p.open()
        rep = p.connect_subscribe(ch)
        epoch = rep["result"]["epoch"]
        self.publish(srv, ch, [{"n": i} for i in range(1, 4)])
        deadline = time.monotonic() + 5 * SLOW
        while len(p.pubs(ch)) < 3 and time.monotonic() < deadline:
            p.poll(timeout=5)
        self.assertEqual([x["offset"] for x in p.pubs(ch)], [1, 2, 3])
        old_session = p.session
        p.close()
        srv.kill()
        srv = self.start()
        self.publish(srv, ch, [{"n": i} for i in range(4, 8)])
        q = Poller(srv)
        gone = q.request("GET", f"/poll?session={old_session}&cursor={p.cursor}")
        self.assertEqual(gone.status, 404, gone)  # sessions do not survive: open a new one and recover
        q.open()
        q.command("connect")
        cid = q.command("subscribe", {"channel": ch, "recover": True, "epoch": epoch, "offset": 3})
        rep = q.wait_reply(cid)
        self.assertIs(rep["result"].get("recovered"), True, rep)
        self.assertEqual(rep["result"]["epoch"], epoch)
        self.assertEqual([(x["offset"], x["data"]) for x in rep["result"]["publications"]],
                         [(i, {"n": i}) for i in range(4, 8)])
        self.publish(srv, ch, [{"n": 8}])
        deadline = time.monotonic() + 5 * SLOW
        while not q.pubs(ch) and time.monotonic() < deadline:
            q.poll(timeout=5)
        self.assertEqual([x["offset"] for x in q.pubs(ch)], [8], "then live, nothing twice")
        q.close()


if __name__ == "__main__":
    main()
