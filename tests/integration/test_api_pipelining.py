"""Pipelined server API requests on one keep-alive connection with the Redis
engine, whose answers come later: the requests behind one awaiting its
engine answer run at once (their publishes reach Redis together instead of
one round trip each), and the answers still come back in request order —
errors answered at once (401, 404, 400) wait for the publishes before them,
a request that is not an API call waits until they are answered, a
`Connection: close` request ends the pipeline, http.max_pipelined bounds
how many await answers per connection, and an answer that goes out while
the next request's body is half received leaves that body whole.

Redis is reached through a proxy on loopback that delays every byte from
Redis by DELAY, so a round trip per request (the behaviour before) is
visible in the time the answers take.
"""
import json
import os
import queue
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from herald_native import API_KEY  # noqa: E402
from herald_testlib import SLOW  # noqa: E402
from redis_cluster import RedisServer, node, redis_available  # noqa: E402

DELAY = 0.1  # seconds added to every reply from Redis


class DelayProxy:
    """TCP proxy 127.0.0.1:port -> Redis: what Redis sends is forwarded DELAY
    later (in order); what the client sends goes straight through."""

    def __init__(self, target_port):
        self.target = target_port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            r = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [c, r]
            q = queue.Queue()
            threading.Thread(target=self._pump, args=(c, r, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(r, None, q), daemon=True).start()
            threading.Thread(target=self._later, args=(q, c), daemon=True).start()

    @staticmethod
    def _pump(src, dst, q):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if q is not None:
                q.put((time.monotonic() + DELAY, data))
            elif data:
                try:
                    dst.sendall(data)
                except OSError:
                    return
            if not data:
                if dst is not None:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                return

    @staticmethod
    def _later(q, dst):
        while True:
            due, data = q.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.ls.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def request(path, body, key=API_KEY, close=False, method="POST"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    if key is not None:
        head += f"Authorization: apikey {key}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + data


def publish(channel, n, **kw):
    return request("/api/publish", {"channel": channel, "data": {"n": n}}, **kw)


class Reader:
    """HTTP/1.1 answers read one by one from a socket."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def answer(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, json.loads(body) if body else None

    def rest(self):
        """Everything until the server closes."""
        try:
            while True:
                self._fill()
        except EOFError:
            return self.buf

    def closed(self):
        return self.rest() == b""


def api_conn(srv):
    """A keep-alive API connection to node srv and its answer reader."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=20 * SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, Reader(s)


def fresh_channel(name):
    return f"{name}-{time.monotonic_ns()}"


def evalsha_count(srv, shard):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    text = Reader(s).rest()
    s.close()
    m = re.search(r'herald_redis_commands_total\{shard="%s",command="evalsha"\} (\d+)' % re.escape(shard),
                  text.decode())
    return int(m.group(1)) if m else 0


@unittest.skipUnless(redis_available(), "redis-server not installed")
class TestApiPipelining(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.proxy = DelayProxy(cls.redis.port)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.redis.kill()

    def test_pipelined_publishes_share_round_trips_answers_in_order(self):
        with node(self.proxy.addr) as srv:
            s, rd = api_conn(srv)
            a, b = fresh_channel("pa"), fresh_channel("pb")
            s.sendall(publish(a, 0))  # first contact (script load) out of the timing
            self.assertEqual(rd.answer()[0], 200)
            t0 = time.monotonic()
            s.sendall(b"".join(publish(a if i % 2 else b, i) for i in range(40)))
            got = [rd.answer() for _ in range(40)]
            elapsed = time.monotonic() - t0
            self.assertEqual([g[0] for g in got], [200] * 40)
            # request order: a's offsets 2..21 and b's 1..20, each ascending, in the order sent
            offs = {a: 1, b: 0}
            for i, (_, _, body) in enumerate(got):
                ch = a if i % 2 else b
                offs[ch] += 1
                self.assertEqual(body["offset"], offs[ch], (i, body))
            # one Redis round trip each would take 40 * DELAY = 4 s
            self.assertLess(elapsed, 10 * DELAY * SLOW, f"40 pipelined publishes took {elapsed:.2f} s")
            s.close()

    def test_errors_and_other_requests_keep_their_place(self):
        with node(self.proxy.addr) as srv:
            s, rd = api_conn(srv)
            a, b = fresh_channel("ea"), fresh_channel("eb")
            s.sendall(publish(a, 1) + publish(a, 2, key="wrong") + request("/api/nosuch", {}) +
                      request("/api/publish", b"{not json") + request("/health", b"", method="GET") +
                      publish(b, 1) + request("/api/publish", b"", method="GET") + publish(a, 3))
            got = [rd.answer() for _ in range(8)]
            self.assertEqual([g[0] for g in got], [200, 401, 404, 400, 200, 200, 405, 200])
            self.assertEqual(got[0][2]["offset"], 1)
            self.assertIn("apikey", got[1][1].get("www-authenticate", ""))
            self.assertEqual(got[1][2]["status"], 401)
            self.assertEqual(got[2][2]["error"], "unknown API method")
            self.assertIn("invalid JSON", got[3][2]["error"])
            self.assertEqual(got[4][2]["status"], "ok")
            self.assertEqual(got[5][2]["offset"], 1)
            self.assertEqual(got[6][1].get("allow"), "POST")
            self.assertEqual(got[7][2]["offset"], 2)
            s.close()

    def test_connection_close_ends_the_pipeline(self):
        with node(self.proxy.addr) as srv:
            s, rd = api_conn(srv)
            a = fresh_channel("ca")
            s.sendall(publish(a, 1) + publish(a, 2, close=True) + publish(a, 3))
            got = [rd.answer() for _ in range(2)]
            self.assertEqual([g[0] for g in got], [200, 200])
            self.assertEqual(got[1][1].get("connection"), "close")
            self.assertTrue(rd.closed(), "more answers after Connection: close")
            s.close()
            s2, rd2 = api_conn(srv)
            s2.sendall(request("/api/history", {"channel": a, "limit": 10}))
            st, _, body = rd2.answer()
            self.assertEqual(st, 200)
            self.assertEqual([p["data"]["n"] for p in body["publications"]], [1, 2])
            s2.close()

    def test_answer_while_the_next_body_arrives(self):
        """The last awaited answer goes out while the next request's body is
        half there: the rest of that body is still its body (it was read as
        a new request head: 431 or 400, and the connection closed)."""
        with node(self.proxy.addr) as srv:
            s, rd = api_conn(srv)
            a = fresh_channel("ba")
            s.sendall(publish(a, 0))  # first contact (script load)
            self.assertEqual(rd.answer()[0], 200)
            second = request("/api/publish", {"channel": a, "data": {"n": 2, "pad": "x" * 30000}})
            cut = len(second) - 20000
            s.sendall(publish(a, 1) + second[:cut])
            st, _, body = rd.answer()  # published after DELAY: answered while the body waits
            self.assertEqual((st, body["offset"]), (200, 2))
            time.sleep(0.1)
            s.sendall(second[cut:])
            st, _, body = rd.answer()
            self.assertEqual(st, 200, body)
            self.assertEqual(body["offset"], 3)
            s.sendall(publish(a, 3))  # and the connection goes on
            self.assertEqual(rd.answer()[0], 200)
            s.close()

    def test_max_pipelined_bounds_requests_awaiting_answers(self):
        with node(self.proxy.addr, "--http.max-pipelined", "3") as srv:
            s, rd = api_conn(srv)
            a = fresh_channel("ma")
            s.sendall(publish(a, 0))
            self.assertEqual(rd.answer()[0], 200)
            t0 = time.monotonic()
            s.sendall(b"".join(publish(a, i) for i in range(1, 31)))
            got = [rd.answer() for _ in range(30)]
            elapsed = time.monotonic() - t0
            self.assertEqual([g[2]["offset"] for g in got], list(range(2, 32)))
            # at most 3 awaiting at a time: at least 10 round trips of DELAY
            self.assertGreater(elapsed, 9 * DELAY, f"30 publishes, 3 at a time, took {elapsed:.2f} s")
            s.close()

    def pipelined_script_calls(self, *args):
        """40 pipelined publishes; returns the publish script calls they took."""
        with node(self.proxy.addr, *args) as srv:
            s, rd = api_conn(srv)
            a = fresh_channel("ba")
            s.sendall(publish(a, 0))
            self.assertEqual(rd.answer()[0], 200)
            before = evalsha_count(srv, self.proxy.addr)
            s.sendall(b"".join(publish(a, i) for i in range(1, 41)))
            got = [rd.answer() for _ in range(40)]
            self.assertEqual([g[2]["offset"] for g in got], list(range(2, 42)))
            s.close()
            return evalsha_count(srv, self.proxy.addr) - before

    def test_publishes_of_a_turn_share_script_calls(self):
        calls = self.pipelined_script_calls()
        self.assertGreaterEqual(calls, 1)
        # one call each would be 40; a slow build (ASan on a loaded box) reads the 40 requests
        # over a few loop turns, each turn's publishes sharing a call (11 seen): 20 leaves room
        self.assertLessEqual(calls, 20, "40 pipelined publishes took a script call each")

    def test_publish_batch_bounds_publications_per_script_call(self):
        self.assertGreaterEqual(self.pipelined_script_calls("--redis.publish-batch", "4"), 10)

    def test_a_failing_publication_fails_alone_in_its_batch(self):
        with node(self.proxy.addr) as srv:
            a, bad = fresh_channel("fa"), fresh_channel("fbad")
            self.assertEqual(self.redis.command("SET", f"herald:m:{{{bad}}}", "not a hash"), "+OK")
            s, rd = api_conn(srv)
            s.sendall(publish(a, 1) + publish(bad, 2) + publish(a, 3))
            got = [rd.answer() for _ in range(3)]
            self.assertEqual(got[0][0], 200)
            self.assertGreaterEqual(got[1][0], 500, got[1])
            self.assertEqual((got[2][0], got[2][2]["offset"]), (200, 2))
            s.close()

    def test_client_gone_while_answers_await(self):
        with node(self.proxy.addr) as srv:
            a = fresh_channel("ga")
            for _ in range(5):
                s, _ = api_conn(srv)
                s.sendall(b"".join(publish(a, i) for i in range(20)))
                s.close()
            time.sleep(3 * DELAY)
            s, rd = api_conn(srv)
            s.sendall(publish(a, 99))
            st, _, body = rd.answer()
            self.assertEqual(st, 200)
            self.assertGreaterEqual(body["offset"], 1)
            self.assertTrue(srv.alive())
            s.close()
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
