"""Channel occupancy (issue 14 item 2): a channel is occupied by its first
subscriber anywhere and vacated when the last one leaves; each transition is
reported exactly once (what the channel_occupied / channel_vacated webhooks
send), and counted in /api/info's "occupancy": {"occupied", "vacated"}.

- two workers, memory engine: clients spread over both workers subscribe to
  and leave one channel at the same moment, round after round: one occupied
  and one vacated per round; a pattern subscription occupies nothing; a
  client that goes away without unsubscribing vacates too;
- two nodes on a real redis-server: clients of both nodes join one channel
  (one occupied over the cluster), then leave (one vacated), round after
  round; a node killed while alone on a channel: a live node reports the
  vacated once the dead node's heartbeat expired (redis.node_ttl).
"""
import asyncio
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from herald_native import Api, Native, run  # noqa: E402
from herald_testlib import SLOW, HeraldTestCase  # noqa: E402
from herald_native import API_KEY  # noqa: E402
from redis_cluster import Cluster, RedisServer, node, redis_available  # noqa: E402

CLIENTS = 8
ROUNDS = 6


def chan():
    return "occ" + uuid.uuid4().hex[:10]


def occupancy(api):
    o = api.call("info", {})["nodes"][0]["occupancy"]
    return o["occupied"], o["vacated"]


def total(apis):
    pairs = [occupancy(a) for a in apis]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def wait_total(apis, want, timeout=5.0):
    """Poll until the summed (occupied, vacated) is want; then a moment more
    to see that nothing else arrives. Returns the last value seen."""
    deadline = time.monotonic() + timeout * SLOW
    got = total(apis)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.02)
        got = total(apis)
    if got == want:
        time.sleep(0.2 * SLOW)
        got = total(apis)
    return got


async def join_all(clients, ch):
    await asyncio.gather(*(c.result("subscribe", {"channel": ch}) for c in clients))


async def leave_all(clients, ch):
    await asyncio.gather(*(c.result("unsubscribe", {"channel": ch}) for c in clients))


class TestOccupancyWorkers(HeraldTestCase):
    server_args = ("--api-key", API_KEY)
    server_workers = 2

    def setUp(self):
        self.api = Api(self.server)

    def tearDown(self):
        self.api.close()
        super().tearDown()

    def test_racing_workers_one_event_per_transition(self):
        async def go():
            ch = chan()
            # 8 connections: the kernel spreads them over both workers' listeners
            clients = [await Native.open(self.server) for _ in range(CLIENTS)]
            o0, v0 = occupancy(self.api)
            for r in range(ROUNDS):
                await join_all(clients, ch)
                self.assertEqual(occupancy(self.api), (o0 + r + 1, v0 + r), f"round {r}: one occupied")
                await leave_all(clients, ch)
                self.assertEqual(occupancy(self.api), (o0 + r + 1, v0 + r + 1), f"round {r}: one vacated")
            for c in clients:
                await c.close()
        run(go())

    def test_pattern_occupies_nothing_and_a_gone_client_vacates(self):
        async def go():
            ch = "occp." + chan()
            a = await Native.open(self.server)
            b = await Native.open(self.server)
            o0, v0 = occupancy(self.api)
            await a.result("subscribe", {"channel": "occp.>"})
            self.assertEqual(occupancy(self.api), (o0, v0), "a pattern is no channel")
            await b.result("subscribe", {"channel": ch})
            self.assertEqual(occupancy(self.api), (o0 + 1, v0))
            await b.close()  # no unsubscribe: the connection just goes
            deadline = time.monotonic() + 5 * SLOW
            while occupancy(self.api) != (o0 + 1, v0 + 1) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            self.assertEqual(occupancy(self.api), (o0 + 1, v0 + 1))
            await a.close()
            self.assertEqual(occupancy(self.api), (o0 + 1, v0 + 1))
        run(go())


@unittest.skipUnless(redis_available(), "redis-server is not installed")
class TestOccupancyRedis(unittest.TestCase):
    # a sweep frees one dead node's channel per Redis server and refresh (the
    # default, 1,000, frees them all at once)
    ARGS = ("--redis.node-ttl", "1s", "--redis.presence-ttl", "3s", "--redis.occupancy-sweep-max", "1")

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.cluster = Cluster(2, cls.redis, *cls.ARGS)
        cls.nodes = cls.cluster.__enter__()
        cls.apis = [Api(n) for n in cls.nodes]

    @classmethod
    def tearDownClass(cls):
        for a in cls.apis:
            a.close()
        codes = cls.cluster.__exit__(None, None, None)
        cls.redis.kill()
        if codes != [0, 0]:
            raise AssertionError(f"nodes exited with {codes}:\n" + "\n".join(n.output(tail=40) for n in cls.nodes))

    def tearDown(self):
        for n in self.nodes:
            self.assertTrue(n.alive(), f"a node died:\n{n.output(tail=60)}")

    def test_two_nodes_one_event_per_cluster_transition(self):
        async def go():
            ch = chan()
            clients = []
            for i in range(CLIENTS):
                clients.append(await Native.open(self.nodes[i % 2]))
            o0, v0 = total(self.apis)
            for r in range(ROUNDS // 2):
                await join_all(clients, ch)
                self.assertEqual(wait_total(self.apis, (o0 + r + 1, v0 + r)), (o0 + r + 1, v0 + r),
                                 f"round {r}: one occupied over both nodes")
                await leave_all(clients, ch)
                self.assertEqual(wait_total(self.apis, (o0 + r + 1, v0 + r + 1)), (o0 + r + 1, v0 + r + 1),
                                 f"round {r}: one vacated over both nodes")
            for c in clients:
                await c.close()
        run(go())

    def test_killed_node_channel_vacated_by_a_live_node(self):
        third = node(self.redis.addr, *self.ARGS, node_id="doomed")
        third.start()
        try:
            async def go():
                ch = chan()
                o0, v0 = total(self.apis)
                c = await Native.open(third)
                await c.result("subscribe", {"channel": ch})
                # the occupied is the third node's to report
                api3 = Api(third)
                deadline = time.monotonic() + 5 * SLOW
                while occupancy(api3)[0] < 1 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                self.assertEqual(occupancy(api3), (1, 0))
                api3.close()
                third.kill()
                await c.close()
                # heartbeat (1s) expires, then a live node's sweep reports the vacated
                self.assertEqual(wait_total(self.apis, (o0, v0 + 1), timeout=6), (o0, v0 + 1))
            run(go())
        finally:
            third.kill()

    def test_sweep_frees_at_most_occupancy_sweep_max_per_refresh(self):
        """redis.occupancy_sweep_max 1: a dead node's 10 channels are vacated a
        few per refresh (each live node's sweep frees one), not all at once,
        and in the end every one of them, once."""
        third = node(self.redis.addr, *self.ARGS, node_id="doomed10")
        third.start()
        try:
            async def go():
                chans = [chan() for _ in range(10)]
                o0, v0 = total(self.apis)
                c = await Native.open(third)
                for ch in chans:
                    await c.result("subscribe", {"channel": ch})
                api3 = Api(third)
                deadline = time.monotonic() + 5 * SLOW
                while occupancy(api3)[0] < 10 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                self.assertEqual(occupancy(api3), (10, 0))
                api3.close()
                third.kill()
                await c.close()
                first = None  # the vacated count when it first moved
                deadline = time.monotonic() + 15 * SLOW
                while time.monotonic() < deadline:
                    o, v = total(self.apis)
                    if first is None and v > v0:
                        first = v - v0
                    if v - v0 >= 10:
                        break
                    await asyncio.sleep(0.02)
                self.assertIsNotNone(first, "nothing was vacated")
                # two live nodes sweep every ~333 ms, one channel each: all 10 at
                # once would take one sweep with the default
                self.assertLessEqual(first, 6, f"{first} of 10 channels vacated at once")
                self.assertEqual(wait_total(self.apis, (o0, v0 + 10), timeout=6), (o0, v0 + 10))
            run(go())
        finally:
            third.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
