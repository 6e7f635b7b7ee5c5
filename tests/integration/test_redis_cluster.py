"""Many Herald nodes sharing one Redis (server.engine = redis), with a real
redis-server on a free loopback port and three real herald processes:

- a publication made through node A (API and client publish) reaches the
  subscribers on B and C exactly once and in publish order;
- history and recovery across nodes: a client that saw offset N on B, then
  reconnects to C, recovers exactly what was published meanwhile on A;
- presence across nodes: clients of A and B are listed by C's API; a
  client that leaves disappears from every node's view;
- /api/info lists every node;
- SSE and long polling on a node receive what another node published;
- a command POSTed to /poll/send of any node reaches the node that holds the
  session (no sticky sessions); an unknown session is 404 on every node.
"""
import asyncio
import json
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_client import Poller  # noqa: E402
from herald_native import Api, Native, run  # noqa: E402
from herald_testlib import SLOW, HttpConn  # noqa: E402
from redis_cluster import Cluster, RedisServer, redis_available  # noqa: E402

ARGS = ("--channels.publish", "anyone", "--channels.history-size", "1000", "--channels.history-ttl", "10m", "--channels.presence", "true",
        "--redis.presence-ttl", "3s")


def chan():
    return "c" + uuid.uuid4().hex[:12]


@unittest.skipUnless(redis_available(), "redis-server is not installed")
class TestRedisCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.cluster = Cluster(3, cls.redis, *ARGS)
        cls.nodes = cls.cluster.__enter__()
        cls.apis = [Api(n) for n in cls.nodes]

    @classmethod
    def tearDownClass(cls):
        for a in cls.apis:
            a.close()
        codes = cls.cluster.__exit__(None, None, None)
        cls.redis.kill()
        if codes != [0, 0, 0]:
            raise AssertionError(f"nodes exited with {codes}:\n" + "\n".join(n.output(tail=40) for n in cls.nodes))

    def tearDown(self):
        for n in self.nodes:
            self.assertTrue(n.alive(), f"a node died:\n{n.output(tail=60)}")

    def test_publish_on_a_reaches_b_and_c_once_in_order(self):
        async def go():
            ch = chan()
            b = await Native.open(self.nodes[1])
            c = await Native.open(self.nodes[2])
            rb = await b.result("subscribe", {"channel": ch})
            rc = await c.result("subscribe", {"channel": ch})
            self.assertEqual(rb["offset"], 0)
            self.assertEqual(rb["epoch"], rc["epoch"], "one epoch per channel across nodes")
            n = 60
            # half through the API of A, half by a client of A
            a = await Native.open(self.nodes[0])
            for i in range(n // 2):
                res = self.apis[0].publish(ch, {"i": i})
                self.assertEqual(res["offset"], i + 1)
                self.assertEqual(res["epoch"], rb["epoch"])
            for i in range(n // 2, n):
                res = await a.result("publish", {"channel": ch, "data": {"i": i}})
                self.assertEqual(res["offset"], i + 1)
            for cl in (b, c):
                pubs = await cl.pubs(n, channel=ch)
                self.assertEqual([p["data"]["i"] for p in pubs], list(range(n)))
                self.assertEqual([p["offset"] for p in pubs], list(range(1, n + 1)))
                await cl.quiet(0.5)
            for cl in (a, b, c):
                await cl.close()
        run(go())

    def test_patterns_across_nodes_once(self):
        async def go():
            ns = chan()
            b = await Native.open(self.nodes[1])
            # overlapping patterns on one connection, plus a concrete subscription
            await b.result("subscribe", {"channel": f"{ns}.*"})
            await b.result("subscribe", {"channel": f"{ns}.>"})
            await b.result("subscribe", {"channel": f"{ns}.x"})
            c = await Native.open(self.nodes[2])
            await c.result("subscribe", {"channel": f"{ns}.>"})
            # A pattern's subscribe is answered before its PSUBSCRIBE reaches Redis (docs/scaling.md,
            # "Patterns"); an exact subscribe after it is answered once Redis has run both (one
            # connection, in order), so A's publications below find C's pattern in place. b has one.
            await c.result("subscribe", {"channel": f"{ns}-sync"})
            self.apis[0].publish(f"{ns}.x", 1)
            self.apis[0].publish(f"{ns}.y.z", 2)
            self.apis[0].publish(f"{ns}zz", 3)  # matches no pattern
            got_b = await b.pubs(4)  # x: once per subscription (3), y.z: via ">" only (1)
            self.assertEqual(sorted((p["channel"], p["data"]) for p in got_b),
                             sorted([(f"{ns}.x", 1)] * 3 + [(f"{ns}.y.z", 2)]))
            got_c = await c.pubs(2)
            self.assertEqual([p["data"] for p in got_c], [1, 2])
            await b.quiet(0.4)
            await c.quiet(0.1)
            await b.close()
            await c.close()
        run(go())

    def test_server_api_commands_reach_every_node(self):
        async def go():
            ch = chan()
            b = await Native.open(self.nodes[1])
            c = await Native.open(self.nodes[2])
            await b.result("subscribe", {"channel": ch})
            await c.result("subscribe", {"channel": ch})
            # unsubscribe the client of node 1 through node 0's API
            self.apis[0].call("unsubscribe", {"channel": ch, "client": b.client_id, "reason": "bye"})
            push = await b.push()
            self.assertEqual(push.get("unsubscribe", {}).get("channel"), ch, push)
            self.assertEqual(push["unsubscribe"]["reason"], "bye")
            # disconnect the client of node 2 through node 1's API
            self.apis[1].call("disconnect", {"client": c.client_id, "code": 3100, "reason": "go away"})
            push = await c.push()
            self.assertEqual(push.get("disconnect", {}).get("code"), 3100, push)
            await asyncio.wait_for(c.closed.wait(), 5 * SLOW)
            self.assertEqual(c.ws.close_code, 3100)
            # b still works for other channels, and no longer gets ch
            self.apis[0].publish(ch, 1)
            await b.quiet(0.3)
            await b.close()
        run(go())

    def test_history_and_recovery_across_nodes(self):
        async def go():
            ch = chan()
            b = await Native.open(self.nodes[1])
            sub = await b.result("subscribe", {"channel": ch})
            for i in range(3):
                self.apis[0].publish(ch, i)
            seen = await b.pubs(3, channel=ch)
            await b.close()
            for i in range(3, 10):
                self.apis[0].publish(ch, i)
            # every node's history is the same
            for api in self.apis:
                h = api.call("history", {"channel": ch})
                self.assertEqual([p["data"] for p in h["publications"]], list(range(10)))
                self.assertEqual(h["epoch"], sub["epoch"])
            c = await Native.open(self.nodes[2])
            res = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": sub["epoch"],
                                                "offset": seen[-1]["offset"]})
            self.assertTrue(res["recovered"], res)
            self.assertEqual([p["data"] for p in res["publications"]], list(range(3, 10)))
            self.apis[1].publish(ch, 10)
            (p,) = await c.pubs(1, channel=ch)
            self.assertEqual((p["offset"], p["data"]), (11, 10))
            await c.quiet(0.3)
            # a wrong epoch is not recovered
            d = await Native.open(self.nodes[0])
            res = await d.result("subscribe", {"channel": ch, "recover": True, "epoch": "0000000000000000",
                                                "offset": 2})
            self.assertFalse(res["recovered"])
            await c.close()
            await d.close()
        run(go())

    def test_presence_across_nodes(self):
        async def go():
            ch = chan()
            a = await Native.open(self.nodes[0])
            b = await Native.open(self.nodes[1])
            await a.result("subscribe", {"channel": ch})
            await b.result("subscribe", {"channel": ch})
            want = {a.client_id, b.client_id}
            for api in self.apis:
                pres = api.call("presence", {"channel": ch})
                self.assertEqual(set(pres["clients"]), want, pres)
            stats = self.apis[2].call("presence_stats", {"channel": ch})
            self.assertEqual(stats["num_clients"], 2)
            c = await Native.open(self.nodes[2])
            await c.result("subscribe", {"channel": ch})
            self.assertEqual(set((await c.result("presence", {"channel": ch}))["clients"]), want | {c.client_id})
            await b.close()
            deadline = time.monotonic() + 5 * SLOW
            while True:
                ids = set(self.apis[2].call("presence", {"channel": ch})["clients"])
                if ids == {a.client_id, c.client_id}:
                    break
                self.assertLess(time.monotonic(), deadline, f"presence still {ids}")
                await asyncio.sleep(0.05)
            await a.close()
            await c.close()
        run(go())

    def test_channels_listed_by_every_node(self):
        ch = chan()
        for i in range(3):
            self.apis[0].publish(ch, i)
        for api in self.apis:
            self.assertEqual(api.call("channels", {"pattern": ch})["channels"], {ch: {"offset": 3, "subscribers": 0}})
            self.assertIn(ch, api.call("channels")["channels"])

    def test_info_lists_every_node(self):
        deadline = time.monotonic() + 10 * SLOW
        while True:
            info = self.apis[0].call("info")
            ids = [n.get("id") for n in info["nodes"]]
            if sorted(ids) == ["node0", "node1", "node2"]:
                break
            self.assertLess(time.monotonic(), deadline, f"nodes: {info}")
            time.sleep(0.2)
        self.assertEqual(info["nodes"][0]["id"], "node0")
        self.assertEqual(info["nodes"][0]["engine"], "redis")
        others = {n["id"]: n for n in info["nodes"][1:]}
        self.assertEqual(others["node1"]["address"], self.nodes[1].url("/").split("//")[1].rstrip("/"))

    def test_sse_and_poll_receive_other_nodes_publications(self):
        ch = chan()
        conn = HttpConn(self.nodes[1].addr, timeout=10 * SLOW)
        conn.send(f"GET /sse?channel={ch} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = conn.read_head(time.monotonic() + 10 * SLOW)
        self.assertIn(b" 200 ", head.split(b"\r\n")[0], head)
        for i in range(5):
            self.apis[2].publish(ch, {"n": i})
        got = []
        deadline = time.monotonic() + 10 * SLOW
        while len(got) < 5:
            i = conn.buf.find(b"\n")
            if i < 0:
                conn._fill(deadline)
                continue
            line = bytes(conn.buf[:i]).decode()
            del conn.buf[:i + 1]
            if line.startswith("data: ") and '"n"' in line:
                got.append(json.loads(line[6:])["n"])
        self.assertEqual(got, list(range(5)))
        conn.close()

    def test_posted_command_reaches_the_sessions_node(self):
        ch = chan()
        p = Poller(self.nodes[0])
        p.open()
        # the session lives on node 0; its commands are POSTed to nodes 1 and 2
        for k, n in enumerate((self.nodes[1], self.nodes[2])):
            other = Poller(n)
            other.session = p.session
            other.send({"id": 10 + k, "connect": {}} if k == 0 else {"id": 11, "subscribe": {"channel": ch}})
            other.close()
        rep = p.wait_reply(11)
        self.assertIn("result", rep, rep)
        self.assertEqual(rep["result"]["channel"], ch)
        self.assertIn("result", p.wait_reply(10))
        self.apis[2].publish(ch, {"x": 1})
        deadline = time.monotonic() + 10 * SLOW
        while not p.pubs(ch):
            self.assertLess(time.monotonic(), deadline, f"no publication on the session: {p.lines}")
            p.poll(timeout=5)
        self.assertEqual(p.pubs(ch)[0]["data"], {"x": 1})
        # a session no node holds
        ghost = Poller(self.nodes[1])
        ghost.session = "0" * 32
        ghost.send({"id": 1, "connect": {}}, expect=404)
        ghost.close()
        p.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
