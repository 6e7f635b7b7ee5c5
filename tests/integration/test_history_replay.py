#!/usr/bin/env python3
"""test_history_replay - replay a channel's whole retained log (docs/protocol.md
"### history", docs/api.md "history"): pages of `limit` publications forward
(`since` = the reply's `next`) and backward (`reverse: true`, `before` = the
reply's `next`), a range since < offset < before, `since_time` (unix ms), the
errors of bad input (native 107, API 400, naming the field), a wrong epoch in
a cursor, on the memory engine, on the Redis engine (a real redis-server, when
installed) and with --data-dir after kill -9.
"""
import os
import shutil
import sys
import tempfile
import time
import unittest
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, main  # noqa: E402
from herald_native import API_KEY, Api, ApiTestCase, Native, check_error, run  # noqa: E402
from redis_cluster import RedisServer, redis_available  # noqa: E402

ARGS = ("--api-key", API_KEY, "--channels.history-size", "1000", "--channels.history-ttl", "1h")
N = 250
PAGE = 40
_seq = [0]


def chan():
    _seq[0] += 1
    return f"replay:{os.getpid()}-{_seq[0]}"


def publish_many(api, ch, n, start=1):
    """n publications {"n": i} in batches; returns the epoch."""
    epoch = None
    for lo in range(start, start + n, 50):
        res = api.batch_publish(ch, [{"n": i} for i in range(lo, min(lo + 50, start + n))])
        epoch = res[0]["epoch"]
    return epoch


def walk(fetch, params, cursor_key, tc, max_pages=20):
    """Every page of a history read: follow `next` (as since or before) until
    `more` is absent. Returns the offsets in the order received and the pages."""
    offsets, pages = [], 0
    p = dict(params)
    while True:
        pages += 1
        tc.assertLessEqual(pages, max_pages, "paging did not end")
        r = fetch(p)
        got = [x["offset"] for x in r["publications"]]
        tc.assertLessEqual(len(got), p.get("limit", 1 << 30), r)
        offsets += got
        if not r.get("more"):
            tc.assertNotIn("next", r, "next without more")
            return offsets, pages
        nxt = r["next"]
        tc.assertEqual(nxt, {"offset": got[-1], "epoch": r["epoch"]}, "next is the last publication's position")
        p[cursor_key] = nxt


class ReplayCases:
    """The cases, run against cls.server (memory or Redis engine)."""

    def fetchers(self):
        """(name, fetch(params) -> result) for the API and the native protocol."""
        def api(ch):
            return lambda p: self.api.call("history", dict(p, channel=ch))

        def native(ch):
            async def one(p):
                c = await Native.open(self.server)
                try:
                    return await c.result("history", dict(p, channel=ch))
                finally:
                    await c.close()
            return lambda p: run(one(p))
        return (("api", api), ("native", native))

    def test_page_250_forward_and_backward(self):
        ch = chan()
        epoch = publish_many(self.api, ch, N)
        for name, f in self.fetchers():
            fetch = f(ch)
            fwd, pages = walk(fetch, {"limit": PAGE}, "since", self)
            self.assertEqual(fwd, list(range(1, N + 1)), f"{name} forward: every offset once, in order")
            self.assertEqual(pages, 7, name)
            back, pages = walk(fetch, {"limit": PAGE, "reverse": True}, "before", self)
            self.assertEqual(back, list(range(N, 0, -1)), f"{name} backward: every offset once, newest first")
            self.assertEqual(pages, 7, name)
            # forward from a cursor given with its epoch, to the end
            rest, _ = walk(fetch, {"limit": PAGE, "since": {"offset": 200, "epoch": epoch}}, "since", self)
            self.assertEqual(rest, list(range(201, N + 1)), name)

    def test_range_since_before(self):
        ch = chan()
        epoch = publish_many(self.api, ch, N)
        rng = {"since": {"offset": 100, "epoch": epoch}, "before": {"offset": 151, "epoch": epoch}}
        for name, f in self.fetchers():
            fetch = f(ch)
            r = fetch(dict(rng))
            self.assertEqual([p["offset"] for p in r["publications"]], list(range(101, 151)), name)
            self.assertNotIn("more", r, name)
            fwd, _ = walk(fetch, dict(rng, limit=PAGE), "since", self)
            self.assertEqual(fwd, list(range(101, 151)), f"{name}: pages stay inside the range")
            back, _ = walk(fetch, dict(rng, limit=PAGE, reverse=True), "before", self)
            self.assertEqual(back, list(range(150, 100, -1)), f"{name}: backward stops at since")
            # before alone, forward: the oldest publications below it
            r = fetch({"before": {"offset": 4, "epoch": epoch}})
            self.assertEqual([p["offset"] for p in r["publications"]], [1, 2, 3], name)

    def test_since_time(self):
        ch = chan()
        publish_many(self.api, ch, 10)
        time.sleep(0.3 * SLOW)
        t = int(time.time() * 1000)
        time.sleep(0.3 * SLOW)
        epoch = publish_many(self.api, ch, 60, start=11)
        for name, f in self.fetchers():
            fetch = f(ch)
            r = fetch({"since_time": t, "limit": 5})
            self.assertEqual([p["offset"] for p in r["publications"]], [11, 12, 13, 14, 15], name)
            fwd, _ = walk(fetch, {"since_time": t, "limit": PAGE}, "since", self)
            self.assertEqual(fwd, list(range(11, 71)), name)
            back, _ = walk(fetch, {"since_time": t, "limit": PAGE, "reverse": True}, "before", self)
            self.assertEqual(back, list(range(70, 10, -1)), f"{name}: backward stops at since_time")
            r = fetch({"since_time": t, "before": {"offset": 13, "epoch": epoch}})
            self.assertEqual([p["offset"] for p in r["publications"]], [11, 12], name)
            r = fetch({"since_time": int(time.time() * 1000) + 3600_000})
            self.assertEqual(r["publications"], [], name)

    def test_wrong_epoch_in_a_cursor(self):
        ch = chan()
        epoch = publish_many(self.api, ch, 5)
        for name, f in self.fetchers():
            fetch = f(ch)
            for key in ("since", "before"):
                r = fetch({key: {"offset": 3, "epoch": "not-" + epoch}, "limit": 2})
                self.assertEqual((r["publications"], r["epoch"], r["offset"]), ([], epoch, 5), f"{name} {key}")
                self.assertNotIn("more", r)
                self.assertNotIn("next", r)

    BAD = (({"before": 5}, "before"), ({"before": {"offset": -1}}, "before"),
           ({"before": {"epoch": "x"}}, "before"), ({"since": {"offset": -3}}, "since"),
           ({"since_time": "yesterday"}, "since_time"), ({"since_time": -1}, "since_time"),
           ({"since_time": 1.5}, "since_time"),
           ({"since": {"offset": 9}, "before": {"offset": 9}}, "before.offset"),
           ({"since": {"offset": 9}, "before": {"offset": 3}}, "before.offset"))

    def test_bad_input(self):
        ch = chan()

        async def native():
            c = await Native.open(self.server)
            for params, field in self.BAD:
                err = await c.error("history", dict(params, channel=ch), code=107)
                self.assertIn(field, err.get("detail", ""), params)
            await c.close()
        run(native())
        for params, field in self.BAD:
            body = self.api.call("history", dict(params, channel=ch), expect=400)
            self.assertIn(field, body["error"], params)


class MemoryReplayTest(ReplayCases, ApiTestCase):
    server_args = ARGS


@unittest.skipUnless(redis_available(), "redis-server not installed")
class RedisReplayTest(ReplayCases, ApiTestCase):
    redis = None

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.server_args = ARGS + ("--engine", "redis", "--redis", cls.redis.addr,
                                  "--redis-prefix", "r" + uuid.uuid4().hex[:8])
        try:
            super().setUpClass()
        except BaseException:
            cls.redis.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.redis.kill()


class DurableReplayTest(unittest.TestCase):
    """--data-dir: the whole log paged backward after kill -9, same epoch."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-replay-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        srv = Herald(*ARGS, "--data-dir", self.dir, "--engine.fsync", "always")
        self.servers.append(srv)
        srv.start()
        return srv

    def test_page_backward_after_kill9(self):
        srv = self.start()
        api = Api(srv)
        epoch = publish_many(api, "log", N)
        api.close()
        srv.kill()
        srv = self.start()
        api = Api(srv)
        try:
            fetch = lambda p: api.call("history", dict(p, channel="log"))  # noqa: E731
            self.assertEqual(fetch({"limit": 0})["epoch"], epoch, "the epoch survives")
            back, pages = walk(fetch, {"limit": PAGE, "reverse": True}, "before", self)
            self.assertEqual(back, list(range(N, 0, -1)))
            self.assertEqual(pages, 7)
            rng, _ = walk(fetch, {"limit": PAGE, "since": {"offset": 10, "epoch": epoch},
                                  "before": {"offset": 120, "epoch": epoch}}, "since", self)
            self.assertEqual(rng, list(range(11, 120)))
        finally:
            api.close()


if __name__ == "__main__":
    main()
