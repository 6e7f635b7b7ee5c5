#!/usr/bin/env python3
"""The Redis engine hands the publications it receives through pub/sub to
the workers in batches, as a user sees it: pipelined publications to two
channels (interleaved) reach /ws/raw subscribers of each channel exactly
once and in order, and /metrics shows they arrived in a few hand-overs
(herald_redis_message_batches_total) rather than one per publication
(herald_redis_messages_total); with redis.deliver_batch 1 every
publication is a hand-over of its own, and delivery is the same.
"""
import os
import re
import socket
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from herald_testlib import SLOW, RawWS  # noqa: E402
from redis_cluster import RedisServer, node, redis_available  # noqa: E402
from test_api_pipelining import Reader, api_conn, fresh_channel, publish  # noqa: E402

N = 200  # publications per test, alternating between two channels


def counters(srv):
    """(messages, batches) of the node's one shard, from /metrics."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    text = Reader(s).rest().decode()
    s.close()

    def one(name):
        m = re.search(r"^%s\{shard=\"[^\"]+\"\} (\d+)$" % name, text, re.M)
        if not m:
            raise AssertionError(f"{name} missing from /metrics")
        return int(m.group(1))

    return one("herald_redis_messages_total"), one("herald_redis_message_batches_total")


@unittest.skipUnless(redis_available(), "redis-server not installed")
class TestRedisDeliverBatches(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.kill()

    def run_publications(self, srv):
        """Publish N pipelined publications over two channels, each with two
        raw subscribers; check every subscriber got its channel's in order;
        returns the (messages, batches) the N added."""
        chans = [fresh_channel("db-a"), fresh_channel("db-b")]
        subs = {ch: [RawWS.connect(srv.addr, path=f"/ws/raw?channel={ch}") for _ in range(2)] for ch in chans}
        s, rd = api_conn(srv)
        for ch in chans:  # the node's SUBSCRIBE is confirmed once a probe comes back
            s.sendall(publish(ch, -1))
            self.assertEqual(rd.answer()[0], 200)
            for ws in subs[ch]:
                self.assertEqual(ws.recv_message(timeout=10)[1], b'{"n":-1}')
        m0, b0 = counters(srv)
        s.sendall(b"".join(publish(chans[i % 2], i) for i in range(N)))
        answers = [rd.answer() for _ in range(N)]
        self.assertEqual({a[0] for a in answers}, {200})
        for k, ch in enumerate(chans):
            want = [b'{"n":%d}' % i for i in range(k, N, 2)]
            for ws in subs[ch]:
                got = [ws.recv_message(timeout=10)[1] for _ in want]
                self.assertEqual(got, want, "a subscriber's publications lost, repeated or out of order")
                ws.sock.close()
        s.close()
        m1, b1 = counters(srv)
        return m1 - m0, b1 - b0

    def test_publications_reach_the_workers_in_batches(self):
        with node(self.redis.addr) as srv:
            messages, batches = self.run_publications(srv)
            self.assertEqual(messages, N)
            # one hand-over per read of pushes (a publish script call's
            # PUBLISHes come together): ~4-10 here; one per publication before
            self.assertLessEqual(batches, N // 5, f"{messages} publications in {batches} hand-overs")
            self.assertGreaterEqual(batches, 1)

    def test_deliver_batch_one_hands_over_each_publication(self):
        with node(self.redis.addr, "--redis.deliver-batch", "1") as srv:
            self.assertEqual(self.run_publications(srv), (N, N))


if __name__ == "__main__":
    unittest.main(verbosity=2)
