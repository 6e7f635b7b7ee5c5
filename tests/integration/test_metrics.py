#!/usr/bin/env python3
"""GET /metrics (docs/operations.md) of the real herald binary: the
Prometheus text format 0.0.4 parsed line by line with a strict parser
(names, HELP/TYPE once per family before its samples, label syntax),
exact counter values after a known workload (N WebSocket connections, K
echoed messages), 405 for other methods, and `promtool check metrics`
when promtool is installed.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, HeraldTestCase, main  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse(text):
    """{family: {"type":..., "help":..., "samples": [(name, labels, value)]}};
    raises AssertionError on any line the 0.0.4 text format does not allow."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    fams, cur = {}, None
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, val = rest.partition(" ")
            assert re.fullmatch(NAME, name), line
            f = fams.setdefault(name, {"samples": []})
            assert kind.lower() not in f, f"second {kind} for {name}"
            assert not f["samples"], f"{kind} after samples of {name}"
            if kind == "TYPE":
                assert val in TYPES, line
            f[kind.lower()] = val
            cur = name
            continue
        assert not line.startswith("#") and line, f"unexpected line {line!r}"
        m = SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        name, labels, value = m.groups()
        float(value)
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and name[: -len(suf)] in fams:
                fam = name[: -len(suf)]
        assert fam == cur, f"{name} outside its family's block"
        fams[fam]["samples"].append((name, labels or "", float(value)))
    for name, f in fams.items():
        assert "type" in f and "help" in f, f"{name} lacks HELP or TYPE"
        if f["type"] == "counter":
            assert name.endswith("_total"), f"counter {name} without _total"
    return fams


def value(fams, name, labels=""):
    fam = name
    for suf in ("_bucket", "_sum", "_count"):
        if fam not in fams and name.endswith(suf):
            fam = name[: -len(suf)]
    for n, lab, v in fams[fam]["samples"]:
        if n == name and lab == labels:
            return v
    raise KeyError(f"{name}{{{labels}}}")


class MetricsTest(HeraldTestCase):
    server_workers = 2

    def scrape(self, method="GET"):
        req = urllib.request.Request(self.server.url("/metrics"), method=method)
        with urllib.request.urlopen(req, timeout=5 * SLOW) as r:
            self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
            return r.read().decode()

    def test_format_is_strict_text_0_0_4(self):
        fams = parse(self.scrape())
        for name in ("herald_connections", "herald_connections_accepted_total", "herald_bytes_sent_total",
                     "herald_bytes_received_total", "herald_channels", "herald_history_bytes",
                     "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                     "process_start_time_seconds"):
            self.assertIn(name, fams)
        self.assertEqual(fams["herald_build_info"]["samples"][0][2], 1)
        self.assertRegex(fams["herald_build_info"]["samples"][0][1], r'^version="[0-9.]+.*"$')
        self.assertGreater(value(fams, "process_resident_memory_bytes"), 1 << 20)
        start = value(fams, "process_start_time_seconds")
        self.assertLess(abs(start - time.time()), 3600)

    def test_counts_a_known_workload(self):
        n, k = 5, 7
        before = parse(self.scrape())
        socks = [self.server.ws() for _ in range(n)]
        try:
            for i in range(k):
                socks[i % n].send_text(f"m{i}")
                self.assertEqual(socks[i % n].recv_message(timeout=5 * SLOW)[1], f"m{i}".encode())
            after = parse(self.scrape())
            self.assertEqual(value(after, "herald_websockets"), value(before, "herald_websockets") + n)
            self.assertEqual(value(after, "herald_connections_accepted_total"),
                             value(before, "herald_connections_accepted_total") + n + 1)
            self.assertEqual(value(after, "herald_websocket_messages_received_total"),
                             value(before, "herald_websocket_messages_received_total") + k)
            self.assertEqual(value(after, "herald_websocket_messages_sent_total"),
                             value(before, "herald_websocket_messages_sent_total") + k)
            self.assertGreater(value(after, "herald_bytes_received_total"),
                               value(before, "herald_bytes_received_total"))
        finally:
            for s in socks:
                s.close_socket()

    def test_other_methods_get_405_json(self):
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.scrape("POST")
        self.assertEqual(cm.exception.code, 405)
        self.assertIn(b'"error"', cm.exception.read())

    @unittest.skipUnless(shutil.which("promtool"), "promtool not installed")
    def test_promtool_accepts_it(self):
        r = subprocess.run(["promtool", "check", "metrics"], input=self.scrape().encode(), capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    main()
