#!/usr/bin/env python3
"""GET /ready (docs/operations.md) of the real herald binary: 200
{"status":"ready"} normally, 503 JSON while draining after SIGTERM and while
the Redis engine's shard has no connection (back to 200 once Redis is back);
/health stays 200 (liveness) meanwhile.
"""

import json
import os
import signal
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, main  # noqa: E402
from redis_cluster import RedisServer, node, redis_available  # noqa: E402


def get(srv, path):
    try:
        with urllib.request.urlopen(srv.url(path), timeout=5 * SLOW) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(fn, want, timeout):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        got = fn()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


class ReadyTest(unittest.TestCase):
    def test_ready_then_not_ready_while_draining(self):
        """Draining closes the listener (and idle keep-alive connections), so
        a probe after SIGTERM is refused; a request already on a connection
        would get 503 "draining"."""
        with Herald("--drain-timeout", "3s", workers=1) as srv:
            self.assertEqual(get(srv, "/ready"), (200, {"status": "ready"}))
            ws = srv.ws()  # keeps the drain going
            srv.signal(signal.SIGTERM)
            time.sleep(0.2 * SLOW)
            try:
                status = get(srv, "/ready")[0]
            except (urllib.error.URLError, ConnectionError):
                status = "refused"
            self.assertIn(status, (503, "refused"))
            self.assertIsNone(srv.proc.poll(), "still draining")
            ws.close_socket()

    @unittest.skipUnless(redis_available(), "redis-server not installed")
    def test_503_while_redis_is_down(self):
        with RedisServer() as r:
            with node(r.addr) as srv:
                self.assertEqual(wait_for(lambda: get(srv, "/ready")[0], 200, 5), 200)
                r.kill()
                status = wait_for(lambda: get(srv, "/ready")[0], 503, 5)
                self.assertEqual(status, 503)
                self.assertEqual(get(srv, "/ready")[1]["error"], "engine shard disconnected")
                self.assertEqual(get(srv, "/health")[0], 200)
                r.restart()
                self.assertEqual(wait_for(lambda: get(srv, "/ready")[0], 200, 10), 200)


if __name__ == "__main__":
    main()
