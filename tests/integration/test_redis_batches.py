"""The Redis engine's publish batches as a user sees them: many pipelined
publications to one channel share a script call, which appends them to the
channel's history with one RPUSH and trims and expires the list once (not
once per publication) while every answer, offset and history entry stays
what one call per publication gave; a batch mixing channels over two
shards; a channel whose history key has the wrong type fails exactly its
own publications; idempotency keys repeated inside one run; large payloads
in a batch.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from redis_cluster import RedisServer, node, redis_available  # noqa: E402
from test_api_pipelining import api_conn, fresh_channel, publish, request  # noqa: E402


def calls(redis, command):
    """How many times Redis ran `command` (INFO commandstats; 0 if never)."""
    m = re.search(r"cmdstat_%s:calls=(\d+)" % command, redis.command("INFO", "commandstats"))
    return int(m.group(1)) if m else 0


@unittest.skipUnless(redis_available(), "redis-server not installed")
class TestRedisBatches(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.redis2 = RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.kill()
        cls.redis2.kill()

    def history(self, srv, ch, limit=1000):
        s, rd = api_conn(srv)
        s.sendall(request("/api/history", {"channel": ch, "limit": limit}))
        st, _, body = rd.answer()
        s.close()
        self.assertEqual(st, 200, body)
        return body

    def test_many_publications_to_one_channel_in_one_batch(self):
        with node(self.redis.addr, "--channels.history-size", "5") as srv:
            a = fresh_channel("one")
            s, rd = api_conn(srv)
            s.sendall(publish(a, 0))  # first contact (script load) out of the count
            self.assertEqual(rd.answer()[0], 200)
            pushes, trims = calls(self.redis, "rpush"), calls(self.redis, "ltrim")
            s.sendall(b"".join(publish(a, i) for i in range(1, 41)))
            got = [rd.answer() for _ in range(40)]
            self.assertEqual([(g[0], g[2]["offset"]) for g in got], [(200, i + 1) for i in range(1, 41)])
            self.assertEqual(len({g[2]["epoch"] for g in got}), 1)
            s.close()
            hist = self.history(srv, a)
            self.assertEqual([(p["offset"], p["data"]["n"]) for p in hist["publications"]],
                             [(o, o - 1) for o in range(37, 42)])
            self.assertEqual(hist["offset"], 41)
            self.assertEqual(self.redis.command("LLEN", f"herald:h:{{{a}}}"), ":5")
            ttl = int(self.redis.command("PTTL", f"herald:h:{{{a}}}")[1:])
            self.assertGreater(ttl, 60_000)  # channels.history_ttl (5 minutes)
            # one RPUSH / LTRIM per channel and script call, not per publication (40 before);
            # a slow build reads the 40 requests over a few turns: up to 20 calls
            self.assertLessEqual(calls(self.redis, "rpush") - pushes, 20,
                                 "a history RPUSH per publication of one channel in one batch")
            self.assertLessEqual(calls(self.redis, "ltrim") - trims, 20)

    def test_a_batch_mixing_channels_and_shards(self):
        with node(f"{self.redis.addr},{self.redis2.addr}") as srv:
            chans = [fresh_channel(f"mix{i}") for i in range(8)]
            s, rd = api_conn(srv)
            sent = [(chans[(i * 3) % 8], i) for i in range(80)]  # interleaved: 10 each
            s.sendall(b"".join(publish(ch, i) for ch, i in sent))
            got = [rd.answer() for _ in range(80)]
            self.assertEqual({g[0] for g in got}, {200})
            seen = {}
            for (ch, i), (_, _, body) in zip(sent, got):
                seen.setdefault(ch, []).append((body["offset"], i))
            for ch in chans:
                offs = [o for o, _ in seen[ch]]
                self.assertEqual(offs, list(range(1, 11)), ch)
                hist = self.history(srv, ch)
                self.assertEqual([(p["offset"], p["data"]["n"]) for p in hist["publications"]], seen[ch])
            s.close()
            # both shards ran publish scripts (the channels hash to both)
            self.assertGreater(calls(self.redis, "evalsha") + calls(self.redis, "eval"), 0)
            self.assertGreater(calls(self.redis2, "evalsha") + calls(self.redis2, "eval"), 0)

    def test_a_channel_with_a_broken_history_fails_exactly_its_publications(self):
        with node(self.redis.addr) as srv:
            a, bad = fresh_channel("ok"), fresh_channel("bad")
            self.assertEqual(self.redis.command("SET", f"herald:h:{{{bad}}}", "not a list"), "+OK")
            s, rd = api_conn(srv)
            order = [a, bad, a, bad, bad, a]
            s.sendall(b"".join(publish(ch, i) for i, ch in enumerate(order)))
            got = [rd.answer() for _ in order]
            s.close()
            for ch, (st, _, body) in zip(order, got):
                if ch == bad:
                    self.assertGreaterEqual(st, 500, body)
                else:
                    self.assertEqual(st, 200, body)
            self.assertEqual([g[2]["offset"] for ch, g in zip(order, got) if ch == a], [1, 2, 3])
            hist = self.history(srv, a)
            self.assertEqual([p["data"]["n"] for p in hist["publications"]], [0, 2, 5])
            self.assertTrue(srv.alive())

    def test_idempotency_keys_inside_one_run(self):
        with node(self.redis.addr) as srv:
            a = fresh_channel("idem")
            s, rd = api_conn(srv)
            keys = [None, "k1", "k1", None, "k2", "k1", None]
            reqs = []
            for i, k in enumerate(keys):
                body = {"channel": a, "data": {"n": i}}
                if k:
                    body["idempotency_key"] = k
                reqs.append(request("/api/publish", body))
            s.sendall(b"".join(reqs))
            got = [rd.answer() for _ in reqs]
            s.close()
            self.assertEqual([g[0] for g in got], [200] * len(keys))
            # a repeated key answers the first publication's offset and takes none
            self.assertEqual([g[2]["offset"] for g in got], [1, 2, 2, 3, 4, 2, 5])
            hist = self.history(srv, a)
            self.assertEqual([(p["offset"], p["data"]["n"]) for p in hist["publications"]],
                             [(1, 0), (2, 1), (3, 3), (4, 4), (5, 6)])

    def test_large_payloads_in_a_batch(self):
        with node(self.redis.addr) as srv:
            a, b = fresh_channel("big"), fresh_channel("small")
            big = "x" * (60 * 1024)
            s, rd = api_conn(srv)
            reqs = []
            for i in range(12):
                reqs.append(request("/api/publish", {"channel": a, "data": {"n": i, "pad": big}}))
                reqs.append(publish(b, i))
            s.sendall(b"".join(reqs))
            got = [rd.answer() for _ in reqs]
            s.close()
            self.assertEqual([g[0] for g in got], [200] * 24)
            # past channels.max_publication_size (64 KiB): refused, nothing published
            s, rd = api_conn(srv)
            s.sendall(request("/api/publish", {"channel": a, "data": {"pad": "y" * (70 * 1024)}}))
            self.assertEqual(rd.answer()[0], 413)
            s.close()
            hist = self.history(srv, a)
            self.assertEqual([(p["offset"], p["data"]["n"], len(p["data"]["pad"])) for p in hist["publications"]],
                             [(i + 1, i, len(big)) for i in range(12)])
            self.assertEqual([p["data"]["n"] for p in self.history(srv, b)["publications"]], list(range(12)))


if __name__ == "__main__":
    unittest.main()
