"""Failures of a Redis-backed Herald cluster, with real redis-server and herald
processes on loopback ports:

- kill -9 of a node while many clients (1,000; 200 under ASan) receive a
  stream: every client reconnects to another node, recovers from Redis
  history, and ends with every publication exactly once, in order; the
  dead node's presence entries expire;
- Redis restarted mid-stream (with an append-only file, as in production):
  no node crashes, publishes during the outage get 503 JSON errors (none is
  silently dropped), subscribers are told to recover (disconnect 3010) and
  every acknowledged publication reaches every subscriber exactly once;
- two Redis shards, one killed: channels on the other keep working, those on
  the dead one fail with 503 and work again when it is back.
"""
import asyncio
import json
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from herald_native import API_KEY, Api  # noqa: E402
from herald_testlib import SANITIZE, SLOW, raise_nofile_limit  # noqa: E402
from redis_cluster import RedisServer, node, redis_available  # noqa: E402

ARGS = ("--channels.history-size", "5000", "--channels.history-ttl", "10m", "--channels.presence", "true",
        "--redis.presence-ttl", "3s", "--redis.backoff-max", "500ms", "--redis.ping-interval", "500ms")


def chan():
    return "f" + uuid.uuid4().hex[:12]


def fnv1a(s):
    h = 14695981039346656037  # 64-bit FNV-1a (docs/scaling.md)
    for b in s.encode():
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def jump_hash(key, buckets):
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def channel_on_shard(shard, nshards):
    while True:
        c = chan()
        if jump_hash(fnv1a(c), nshards) == shard:
            return c


class Subscriber:
    """A native-protocol client that keeps one subscription across reconnects:
    on any close it reconnects to the next node of `urls` and subscribes with
    recover from the last (epoch, offset) it saw."""

    def __init__(self, urls, channel, start=0):
        self.urls = urls
        self.at = start
        self.channel = channel
        self.epoch = None
        self.offset = 0
        self.got = []            # data["n"] in arrival order
        self.offsets = []
        self.reconnects = 0
        self.codes = []
        self.failed_recovery = 0
        self.subscribed = asyncio.Event()
        self.stop = False

    def _take(self, p):
        if p["offset"] <= self.offset:
            return  # never expected: the server skips what a recovery already gave
        self.offset = p["offset"]
        self.offsets.append(p["offset"])
        self.got.append(p["data"]["n"])

    async def run(self):
        while not self.stop:
            url = self.urls[self.at % len(self.urls)]
            try:
                async with websockets.connect(url, max_size=None, ping_interval=None, open_timeout=10 * SLOW,
                                              close_timeout=1) as ws:
                    sub = {"channel": self.channel}
                    if self.epoch is not None:
                        sub.update(recover=True, epoch=self.epoch, offset=self.offset)
                    await ws.send(json.dumps({"id": 1, "connect": {}}) + "\n" + json.dumps({"id": 2, "subscribe": sub}))
                    async for msg in ws:
                        for line in msg.split("\n"):
                            if not line:
                                continue
                            obj = json.loads(line)
                            if obj.get("id") == 2:
                                if "error" in obj:
                                    raise ConnectionError(f"subscribe failed: {obj}")
                                res = obj["result"]
                                first = self.epoch is None
                                if not first and not res.get("recovered"):
                                    self.failed_recovery += 1
                                self.epoch = res["epoch"]
                                for p in res.get("publications", []):
                                    self._take(p)
                                if first:
                                    self.offset = res["offset"]  # what came before is not ours
                                self.subscribed.set()
                            elif "pub" in obj:
                                self._take(obj["pub"])
                            elif "disconnect" in obj:
                                self.codes.append(obj["disconnect"].get("code"))
            except (ConnectionClosed, OSError, ConnectionError, asyncio.TimeoutError):
                pass
            if self.stop:
                return
            self.reconnects += 1
            self.at += 1
            await asyncio.sleep(0.05)


def run(coro, timeout):
    async def bounded():
        return await asyncio.wait_for(coro, timeout * SLOW)
    return asyncio.run(bounded())


@unittest.skipUnless(redis_available(), "redis-server is not installed")
class TestNodeKilled(unittest.TestCase):
    def test_kill9_node_clients_recover_elsewhere_exactly_once(self):
        raise_nofile_limit()
        n_clients = 200 if SANITIZE else 1000
        n_pubs = 60
        with RedisServer() as redis:
            nodes = [node(redis.addr, *ARGS, node_id=f"n{i}").start() for i in range(3)]
            try:
                api = Api(nodes[2])
                ch = chan()
                urls = [n.ws_url("/ws") for n in nodes]

                async def go():
                    # everybody on node 0, failing over to node 1, then 2
                    subs = [Subscriber(urls[:2], ch) for _ in range(n_clients)]
                    tasks = [asyncio.ensure_future(s.run()) for s in subs]
                    for i in range(0, n_clients, 100):
                        await asyncio.wait_for(asyncio.gather(*(s.subscribed.wait() for s in subs[i:i + 100])),
                                               30 * SLOW)
                    pres = api.call("presence_stats", {"channel": ch})
                    self.assertEqual(pres["num_clients"], n_clients)
                    loop = asyncio.get_event_loop()
                    for i in range(n_pubs):
                        res = await loop.run_in_executor(None, api.publish, ch, {"n": i})
                        self.assertEqual(res["offset"], i + 1)
                        if i == n_pubs // 3:
                            nodes[0].kill()  # SIGKILL
                            stats = await loop.run_in_executor(None, api.call, "presence_stats", {"channel": ch})
                            self.assertEqual(stats["num_clients"], n_clients, "entries outlive their node a while")
                        await asyncio.sleep(0.02)
                    deadline = time.monotonic() + 60 * SLOW
                    while any(len(s.got) < n_pubs for s in subs):
                        if time.monotonic() > deadline:
                            short = [s for s in subs if len(s.got) < n_pubs]
                            raise AssertionError(f"{len(short)} clients incomplete, e.g. {short[0].got[-5:]} "
                                                 f"(reconnects {short[0].reconnects})")
                        await asyncio.sleep(0.1)
                    # the dead node's presence entries expire (redis.presence_ttl 3 s); the entries of
                    # the clients' new connections (node 1) stay
                    deadline = time.monotonic() + 15 * SLOW
                    while True:
                        stats = await loop.run_in_executor(None, api.call, "presence_stats", {"channel": ch})
                        if stats["num_clients"] == n_clients:
                            break
                        self.assertLess(time.monotonic(), deadline, f"presence still lists {stats}")
                        await asyncio.sleep(0.2)
                    for s in subs:
                        s.stop = True
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    return subs

                subs = run(go(), 240)
                want = list(range(n_pubs))
                for s in subs:
                    self.assertEqual(s.got, want, "every publication exactly once, in order")
                    self.assertEqual(s.failed_recovery, 0)
                self.assertTrue(all(s.reconnects >= 1 for s in subs), "every client moved to another node")
                api.close()
            finally:
                for n in nodes:
                    if n.alive():
                        n.stop()


@unittest.skipUnless(redis_available(), "redis-server is not installed")
class TestRedisRestart(unittest.TestCase):
    def test_restart_mid_stream(self):
        redis = RedisServer()
        redis.persistent = True
        with redis:
            nodes = [node(redis.addr, *ARGS, node_id=f"n{i}").start() for i in range(2)]
            try:
                api = Api(nodes[0])
                ch = chan()
                urls = [nodes[1].ws_url("/ws")]

                async def go():
                    subs = [Subscriber(urls, ch) for _ in range(5)]
                    tasks = [asyncio.ensure_future(s.run()) for s in subs]
                    await asyncio.wait_for(asyncio.gather(*(s.subscribed.wait() for s in subs)), 20 * SLOW)
                    loop = asyncio.get_event_loop()
                    acked, refused = [], 0
                    seq = 0
                    restarted = False
                    t_end = None
                    while True:
                        if seq == 30 and not restarted:
                            redis.kill()
                            t_kill = time.monotonic()
                            restarted = True
                        if restarted and t_end is None and time.monotonic() - t_kill > 1.0:
                            await loop.run_in_executor(None, redis.start)
                            t_end = time.monotonic()
                        resp = await loop.run_in_executor(None, lambda: api.raw(
                            "/api/publish", json.dumps({"channel": ch, "data": {"n": seq}})))
                        body = resp.json()
                        if resp.status == 200:
                            acked.append(seq)
                        else:
                            self.assertEqual(resp.status, 503, body)
                            self.assertEqual(set(body), {"error", "status"})
                            refused += 1
                        seq += 1
                        if t_end is not None and len(acked) >= 60 and time.monotonic() - t_end > 1.0:
                            break
                        await asyncio.sleep(0.02)
                    self.assertGreater(refused, 0, "publishes during the outage must fail, not vanish")
                    deadline = time.monotonic() + 30 * SLOW
                    while any(s.got != acked for s in subs):
                        if time.monotonic() > deadline:
                            bad = next(s for s in subs if s.got != acked)
                            raise AssertionError(f"got {bad.got} want {acked} (codes {bad.codes})")
                        await asyncio.sleep(0.1)
                    for s in subs:
                        s.stop = True
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    return subs

                subs = run(go(), 120)
                for s in subs:
                    self.assertIn(3010, s.codes, "subscribers are told to recover after the outage")
                for n in nodes:
                    self.assertTrue(n.alive(), n.output(tail=40))
                api.close()
            finally:
                for n in nodes:
                    if n.alive():
                        n.stop()


@unittest.skipUnless(redis_available(), "redis-server is not installed")
class TestShards(unittest.TestCase):
    def test_one_shard_killed(self):
        with RedisServer() as r0, RedisServer() as r1:
            addrs = f"{r0.addr},{r1.addr}"
            nodes = [node(addrs, *ARGS, node_id=f"s{i}").start() for i in range(2)]
            try:
                api0, api1 = Api(nodes[0]), Api(nodes[1])
                c0, c1 = channel_on_shard(0, 2), channel_on_shard(1, 2)
                for c in (c0, c1):
                    for i in range(3):
                        api0.publish(c, i)
                # each channel lives on its own Redis
                self.assertEqual(r0.command("EXISTS", f"herald:m:{{{c0}}}"), ":1")
                self.assertEqual(r1.command("EXISTS", f"herald:m:{{{c0}}}"), ":0")
                self.assertEqual(r1.command("EXISTS", f"herald:m:{{{c1}}}"), ":1")
                h = api1.call("history", {"channel": c1})
                self.assertEqual([p["data"] for p in h["publications"]], [0, 1, 2])
                r1.kill()
                deadline = time.monotonic() + 5 * SLOW
                while True:
                    resp = api0.raw("/api/publish", json.dumps({"channel": c1, "data": 9}))
                    if resp.status == 503:
                        break
                    self.assertLess(time.monotonic(), deadline, "a dead shard must refuse publishes")
                    time.sleep(0.05)
                for i in range(3, 20):
                    self.assertEqual(api0.publish(c0, i)["offset"], i + 1)
                h = api1.call("history", {"channel": c0})
                self.assertEqual(len(h["publications"]), 20)
                r1.start()
                deadline = time.monotonic() + 10 * SLOW
                while True:
                    resp = api1.raw("/api/publish", json.dumps({"channel": c1, "data": 10}))
                    if resp.status == 200:
                        break
                    self.assertLess(time.monotonic(), deadline, "the shard did not come back")
                    time.sleep(0.1)
                for n in nodes:
                    self.assertTrue(n.alive())
                api0.close()
                api1.close()
            finally:
                for n in nodes:
                    if n.alive():
                        n.stop()


@unittest.skipUnless(redis_available(), "redis-server is not installed")
class TestRedisAuth(unittest.TestCase):
    def test_password(self):
        redis = RedisServer()
        redis.extra = ["--requirepass", "s3cret"]
        with redis:
            good = node(redis.addr, "--redis.password", "s3cret", "--redis.connect-timeout", "1s").start()
            bad = node(redis.addr, "--redis.password", "wrong", "--redis.connect-timeout", "1s").start()
            try:
                api = Api(good)
                self.assertEqual(api.publish(chan(), 1)["offset"], 1)
                api.close()
                api = Api(bad)
                resp = api.raw("/api/publish", json.dumps({"channel": chan(), "data": 1}))
                self.assertEqual(resp.status, 503, resp)
                api.close()
                self.assertIn("HELLO 3 refused", bad.output())
            finally:
                for n in (good, bad):
                    if n.alive():
                        n.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
