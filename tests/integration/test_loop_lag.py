#!/usr/bin/env python3
"""The event loop's lag (docs/operations.md): herald_loop_lag_seconds per
worker and herald_loop_iterations_total, and GET /ready's 503 "loop lag"
while a worker's recent lag is above server.ready_max_loop_lag. A real
cause blocks the loop: the whole process is stopped with SIGSTOP for 2 s
while a WebSocket's ping timer (every 100 ms) is due; after SIGCONT that
timer runs ~2 s late.
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
from test_metrics import parse, value  # noqa: E402


def get(srv, path):
    try:
        with urllib.request.urlopen(srv.url(path), timeout=5 * SLOW) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def lag(srv):
    fams = parse(get(srv, "/metrics")[1].decode())
    w = 'worker="0"'
    return {"count": value(fams, "herald_loop_lag_seconds_count", w),
            "le1": value(fams, "herald_loop_lag_seconds_bucket", w + ',le="1"'),
            "sum": value(fams, "herald_loop_lag_seconds_sum", w),
            "iterations": value(fams, "herald_loop_iterations_total", w)}


def stall(srv, seconds):
    srv.signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        srv.signal(signal.SIGCONT)


class LoopLagTest(unittest.TestCase):
    ARGS = ("--websocket.ping_interval", "100ms")

    def test_stalled_loop_shows_in_histogram_and_ready(self):
        with Herald(*self.ARGS, workers=1) as srv:
            ws = srv.ws()
            deadline = time.monotonic() + 5 * SLOW  # the first on-time pings
            before = lag(srv)
            while not before["count"] and time.monotonic() < deadline:
                time.sleep(0.05)
                before = lag(srv)
            self.assertGreater(before["count"], 0, "the ping timer's firings are observed")
            self.assertEqual(before["le1"], before["count"], "no lag of a second yet")
            self.assertEqual(get(srv, "/ready")[0], 200)
            stall(srv, 2)
            status, body = get(srv, "/ready")
            self.assertEqual((status, json.loads(body)), (503, {"error": "loop lag", "status": 503}))
            after = lag(srv)
            self.assertGreaterEqual(after["count"] - after["le1"], 1, "an observation above 1 s")
            self.assertGreaterEqual(after["sum"] - before["sum"], 1.0)
            self.assertGreater(after["iterations"], before["iterations"])
            # back to ready once the lag is more than a second old
            deadline = time.monotonic() + 5 * SLOW
            while get(srv, "/ready")[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(get(srv, "/ready")[0], 200)
            ws.close_socket()

    def test_threshold_zero_or_above_the_stall_keeps_ready(self):
        for threshold in ("0", "5s"):
            with self.subTest(threshold=threshold), \
                    Herald(*self.ARGS, "--server.ready_max_loop_lag", threshold, workers=1) as srv:
                ws = srv.ws()
                time.sleep(0.3)
                stall(srv, 1.5)
                self.assertEqual(get(srv, "/ready")[0], 200)
                self.assertGreaterEqual(lag(srv)["sum"], 1.0)
                ws.close_socket()


if __name__ == "__main__":
    main()
