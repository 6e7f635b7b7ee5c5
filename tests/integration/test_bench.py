#!/usr/bin/env python3
"""`herald bench` against a real Herald: the load generator's smoke runs.

The bench is a C program (src/bench/) started as `herald bench ...` with the
same binary; these tests start `herald serve`, run the bench against it for
a few seconds and check its JSON report (the contract other scripts rely
on, docs/benchmarks.md):

  - a fan-out run (200 subscribers over 4 channels, 500 publications/s,
    3 s counted) delivers exactly what was expected, with no loss,
    duplicate or reorder, sane latency percentiles, and with --server-pid
    the server's RSS, bytes per connection and CPU; Herald's own counters
    (/api/info) agree with the bench's;
  - an idle run (--publish-rate 0) opens every connection and publishes nothing;
  - a churn run closes and reopens subscribers and still loses nothing;
  - publishing through the subscribers' own /ws/raw connections;
  - --threads, --source-ips and --connect-rate;
  - SSE subscribers;
  - --tls against a TLS listener (WebSocket and SSE subscribers, HTTPS
    publishing), and a plain client refused by it;
  - the fan-out ceiling (bench/ceiling.c) driven with --server ceiling;
  - a server that is not there, a wrong API key, --timeout: exit 1 and the
    reason in the report;
  - bad flags: exit 2 with a message; --help.

Numbers are printed to stderr, never asserted beyond sanity (the real runs
are in docs/benchmarks.md). Sanitizer builds (HERALD_SANITIZE=ON) run fewer
connections at lower rates.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (HERALD_BIN, SANITIZE, SLOW, Herald, HeraldTestCase,  # noqa: E402
                            main, raise_nofile_limit)
from herald_native import Api  # noqa: E402

API_KEY = "bench-test-key"

if SANITIZE:
    SUBS, CHANNELS, RATE, DURATION, WARMUP = 100, 4, 200, 2, 0.5
else:
    SUBS, CHANNELS, RATE, DURATION, WARMUP = 200, 4, 500, 3, 1

TOP_KEYS = {"scenario", "server", "transport", "params", "connections", "messages", "latency_ms",
            "server_process", "bench_process", "errors", "ok"}
PARAM_KEYS = {"server", "host", "port", "transport", "subscribers", "channels", "channel_prefix", "connect_rate",
              "source_ips", "publish_rate", "publishers", "payload_bytes", "publish_via", "duration", "warmup",
              "churn", "server_pid", "threads", "json", "quiet", "scenario", "timeout"}


def run_bench(port, *args, timeout=60, json_file=False):
    """Run `herald bench`; returns (exit code, report dict or None, stderr text).
    The report comes from stdout (--json -) or from a file (json_file=True)."""
    argv = [HERALD_BIN, "bench", "--port", str(port), "--api-key", API_KEY, "--timeout", str(timeout)]
    argv += [str(a) for a in args]
    path = None
    if json_file:
        fd, path = tempfile.mkstemp(prefix="herald-bench-", suffix=".json")
        os.close(fd)
        argv += ["--json", path]
    else:
        argv += ["--json", "-"]
    env = dict(os.environ)
    env.pop("HERALD_API_KEY", None)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "exitcode=23"]))
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, timeout=timeout * SLOW + 30)
        err = proc.stderr.decode("utf-8", "replace")
        report = None
        try:
            if path:
                with open(path) as f:
                    report = json.load(f)
            else:
                lines = [ln for ln in proc.stdout.decode().splitlines() if ln.strip()]
                report = json.loads(lines[-1]) if lines else None
        except (ValueError, OSError):
            pass
        return proc.returncode, report, err
    finally:
        if path:
            os.unlink(path)


def describe(r):
    m, c, lat = r["messages"], r["connections"], r["latency_ms"]
    sp = r["server_process"]
    return (f"{c['opened']}/{c['target']} connections ({c['per_second']:.0f}/s, handshake p99 "
            f"{c['handshake_ms']['p99']} ms), published {m['published']}, delivered {m['delivered']}/"
            f"{m['expected']} ({m['per_second']:.0f}/s), lost {m['lost']}, latency p50 {lat['p50']} ms p99 "
            f"{lat['p99']} ms max {lat['max']} ms; server RSS {sp['rss_before']} -> {sp['rss_connected']} "
            f"({sp['bytes_per_connection']} B/conn), ramp CPU {sp.get('ramp_cpu_us_per_connection')} us/conn, "
            f"CPU {sp['cpu_percent']}%; bench CPU "
            f"{r['bench_process']['cpu_percent']}%")


class BenchCase(HeraldTestCase):
    # --publish-via ws publishes from clients, which is opt-in
    server_args = ("--api-key", API_KEY, "--channels.publish", "anyone")
    server_workers = 2

    @classmethod
    def setUpClass(cls):
        raise_nofile_limit()
        super().setUpClass()

    def bench(self, *args, expect_rc=0, port=None, **kw):
        rc, r, err = run_bench(port or self.server.port, *args, **kw)
        if rc != expect_rc or r is None:
            sys.stderr.write(f"\n----- herald bench stderr (exit code {rc}) -----\n{err[-5000:]}\n-----\n")
        self.assertEqual(rc, expect_rc, f"herald bench exit code {rc}; report: {r}")
        self.assertIsNotNone(r, "herald bench wrote no JSON report")
        self.assertEqual(set(r) & TOP_KEYS, TOP_KEYS, f"missing keys in {sorted(r)}")
        self.assertTrue(PARAM_KEYS <= set(r["params"]), f"missing params: {PARAM_KEYS - set(r['params'])}")
        self.assertEqual(r["ok"], expect_rc == 0)
        return r, err

    def assert_no_loss(self, r):
        m = r["messages"]
        self.assertEqual(m["lost"], 0, describe(r))
        self.assertEqual(m["duplicates"], 0, describe(r))
        self.assertEqual(m["reordered"], 0, describe(r))
        self.assertEqual(m["unparsed"], 0, describe(r))
        self.assertEqual(m["misrouted"], 0, describe(r))
        self.assertEqual(m["delivered"], m["expected"], describe(r))

    # -- runs ----------------------------------------------------------------

    def test_fanout_run_against_a_fresh_server(self):
        """The contract run: everything delivered, latency sane, server memory and CPU reported."""
        with Herald("--api-key", API_KEY, workers=2) as srv:
            api = Api(srv, key=API_KEY)
            out0 = api.call("info")["nodes"][0]["messages_out"]
            r, err = self.bench("--subscribers", SUBS, "--channels", CHANNELS, "--publish-rate", RATE,
                                "--duration", DURATION, "--warmup", WARMUP, "--server-pid", srv.proc.pid,
                                "--scenario", "smoke-fanout", "--payload-bytes", 100, port=srv.port,
                                json_file=True)
            out1 = api.call("info")["nodes"][0]["messages_out"]
            api.close()
        sys.stderr.write(f"\nbench fan-out smoke: {describe(r)}\n")
        self.assertEqual(r["scenario"], "smoke-fanout")
        self.assertEqual(r["server"], "herald")
        self.assertEqual(r["transport"], "ws")
        self.assertEqual(r["errors"], [])
        c, m, lat = r["connections"], r["messages"], r["latency_ms"]
        self.assertEqual((c["target"], c["opened"], c["failed"], c["closed_by_server"]), (SUBS, SUBS, 0, 0))
        self.assertGreater(c["per_second"], 0)
        for k in ("p50", "p95", "p99", "max"):
            self.assertGreater(c["handshake_ms"][k], 0)
        self.assertLessEqual(c["handshake_ms"]["p50"], c["handshake_ms"]["p99"])
        # every publication of the window reached its channel's SUBS / CHANNELS subscribers
        target = RATE * DURATION
        self.assertGreaterEqual(m["published"], target * 0.9, describe(r))
        self.assertLessEqual(m["published"], target + 2, describe(r))
        self.assertEqual(m["expected"], m["published"] * SUBS // CHANNELS, describe(r))
        self.assert_no_loss(r)
        self.assertEqual(m["publish_errors"], 0)
        self.assertGreater(m["per_second"], 0)
        # warmup deliveries are received but not counted; Herald sent at least all of them
        self.assertGreaterEqual(m["received_total"], m["delivered"])
        self.assertGreaterEqual(out1 - out0, m["received_total"], "server sent fewer frames than the bench counted")
        # latency: ordered percentiles, a sane range on loopback
        self.assertEqual(lat["count"], m["delivered"])
        self.assertGreater(lat["p50"], 0)
        self.assertLessEqual(lat["p50"], lat["p95"])
        self.assertLessEqual(lat["p95"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["p99_9"])
        self.assertLessEqual(lat["p99_9"], lat["max"])
        self.assertLess(lat["p50"], 1000 * SLOW, "median latency above a second on loopback")
        # the server process
        sp = r["server_process"]
        self.assertEqual(sp["pid"], r["params"]["server_pid"])
        self.assertGreater(sp["rss_before"], 0)
        self.assertGreater(sp["rss_connected"], sp["rss_before"])
        self.assertGreater(sp["rss_end"], 0)
        self.assertGreater(sp["bytes_per_connection"], 0)
        self.assertAlmostEqual(sp["bytes_per_connection"], (sp["rss_connected"] - sp["rss_before"]) / SUBS, delta=0.01)
        self.assertGreater(sp["cpu_percent"], 0)
        self.assertIsNotNone(r["bench_process"]["cpu_percent"])

    def test_idle_run(self):
        r, _ = self.bench("--subscribers", SUBS, "--channels", 10, "--publish-rate", 0, "--duration", 1,
                          "--warmup", 0, "--quiet", "--server-pid", self.server.proc.pid)
        sys.stderr.write(f"\nbench idle: {describe(r)}\n")
        c, m = r["connections"], r["messages"]
        self.assertEqual((c["opened"], c["failed"]), (SUBS, 0))
        self.assertEqual((m["published"], m["expected"], m["delivered"], m["lost"]), (0, 0, 0, 0))
        self.assertEqual(r["latency_ms"]["count"], 0)
        self.assertIsNone(r["latency_ms"]["p99"])
        self.assertIsNotNone(r["server_process"]["bytes_per_connection"])
        self.assertEqual(r["errors"], [])
        # the ramp report: handshake p99.9, and the server's CPU for the ramp per connection
        hs = c["handshake_ms"]
        self.assertLessEqual(hs["p50"], hs["p99"])
        self.assertLessEqual(hs["p99"], hs["p99_9"])
        self.assertLessEqual(hs["p99_9"], hs["max"])
        sp = r["server_process"]
        # read from the server's CPU-time clock (ns): a 100-connection ramp is a few ms of CPU,
        # which /proc's 10 ms ticks could read as 0
        self.assertGreater(sp["ramp_cpu_seconds"], 0)
        self.assertAlmostEqual(sp["ramp_cpu_us_per_connection"], sp["ramp_cpu_seconds"] / SUBS * 1e6, delta=0.01)

    def test_churn_run(self):
        churn = 50 if SANITIZE else 100
        r, _ = self.bench("--subscribers", SUBS, "--channels", CHANNELS, "--publish-rate", RATE // 2,
                          "--duration", DURATION, "--warmup", WARMUP, "--churn", churn, "--quiet")
        sys.stderr.write(f"\nbench churn: {describe(r)}; churn {r['connections']['churn']}\n")
        ch = r["connections"]["churn"]
        self.assertGreater(ch["closed"], churn * DURATION * 0.5)
        self.assertGreater(ch["reopened"], churn * DURATION * 0.5)
        self.assertEqual(ch["failed"], 0)
        self.assertGreater(ch["per_second"], 0)
        self.assertEqual(r["connections"]["closed_by_server"], 0)
        # a reopened subscriber is owed what was published after its handshake completed
        self.assertGreater(r["messages"]["expected"], 0)
        self.assert_no_loss(r)

    def test_publish_through_websocket(self):
        subs, chans = (40, 20) if not SANITIZE else (20, 10)
        r, _ = self.bench("--subscribers", subs, "--channels", chans, "--publish-via", "ws", "--publish-rate", 200,
                          "--duration", 2, "--warmup", 0.5, "--quiet")
        m = r["messages"]
        self.assertGreater(m["published"], 300)
        self.assertEqual(m["expected"], m["published"] * subs // chans)
        self.assert_no_loss(r)
        self.assertEqual(r["errors"], [])

    def test_threads_source_ips_connect_rate(self):
        r, _ = self.bench("--subscribers", 120, "--channels", 3, "--publish-rate", 150, "--duration", 1.5,
                          "--warmup", 0.5, "--threads", 2, "--source-ips", 3, "--connect-rate", 400, "--quiet")
        c = r["connections"]
        self.assertEqual(c["opened"], 120)
        # 120 connections at 400/s: the ramp takes ~0.3 s, not 0
        self.assertGreater(c["ramp_seconds"], 0.2)
        self.assertLess(c["per_second"], 600)
        self.assertEqual(r["bench_process"]["threads"], 2)
        self.assert_no_loss(r)
        self.assertGreater(r["messages"]["delivered"], 0)

    def test_sse_transport(self):
        """SSE subscribers (/sse?channel=...): the same run delivers everything."""
        r, _ = self.bench("--transport", "sse", "--subscribers", 20, "--channels", 2, "--publish-rate", 100,
                          "--duration", 1, "--warmup", 0, "--quiet")
        sys.stderr.write(f"\nbench sse: {describe(r)}\n")
        self.assertEqual(r["transport"], "sse")
        self.assertEqual(r["connections"]["opened"], 20)
        self.assertGreater(r["messages"]["expected"], 0)
        self.assert_no_loss(r)

    def test_tls(self):
        """--tls: every connection over TLS against a TLS-only Herald (self-signed certificate): WebSocket and
        SSE subscribers and the HTTPS publisher deliver everything; without --tls nothing connects."""
        with tempfile.TemporaryDirectory(prefix="herald-bench-tls-") as tmp:
            cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            with Herald("--api-key", API_KEY, "--tls-cert", cert, "--tls-key", key, workers=1) as h:
                for transport in ("ws", "sse"):
                    r, _ = self.bench("--tls", "--transport", transport, "--subscribers", 40, "--channels", 2,
                                      "--publish-rate", 100, "--duration", 1, "--warmup", 0.3, "--quiet",
                                      "--server-pid", h.proc.pid, port=h.port)
                    sys.stderr.write(f"\nbench tls {transport}: {describe(r)}\n")
                    self.assertTrue(r["params"]["tls"])
                    self.assertEqual((r["connections"]["opened"], r["connections"]["failed"]), (40, 0))
                    self.assertGreater(r["connections"]["handshake_ms"]["p50"], 0)
                    self.assertGreater(r["messages"]["expected"], 0)
                    self.assert_no_loss(r)
                r, _ = self.bench("--subscribers", 5, "--publish-rate", 0, "--duration", 0.5, "--warmup", 0,
                                  "--quiet", expect_rc=1, port=h.port, timeout=10)
                self.assertEqual(r["connections"]["opened"], 0)
                self.assertFalse(r["params"]["tls"])

    def test_against_the_ceiling(self):
        """bench/ceiling.c (herald-ceiling), the fan-out ceiling Herald is measured against,
        driven by `herald bench --server ceiling`: everything delivered, in order."""
        exe = os.path.join(os.environ.get("HERALD_TOOLS_DIR", os.path.dirname(HERALD_BIN)), "herald-ceiling")
        if not os.path.exists(exe):
            exe = os.path.join(os.path.dirname(HERALD_BIN), "herald-ceiling")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([exe, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    import time
                    time.sleep(0.05)
            # publications through POST /pub/<channel>, then (the chat workload) through one
            # WebSocket publisher per channel (GET /pub/<channel>)
            for via in ("api", "ws"):
                r, _ = self.bench("--server", "ceiling", "--subscribers", SUBS, "--channels", CHANNELS,
                                  "--publish-rate", RATE, "--publish-via", via, "--duration", 1, "--warmup", 0.5,
                                  "--quiet", "--server-pid", proc.pid, port=port)
                sys.stderr.write(f"\nbench ceiling via {via}: {describe(r)}\n")
                self.assertEqual(r["server"], "ceiling")
                self.assertEqual(r["connections"]["opened"], SUBS)
                self.assertGreater(r["messages"]["expected"], 0)
                self.assert_no_loss(r)
                self.assertIsNone(proc.poll(), "the ceiling exited")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        rc, _, err = run_bench(port, "--server", "ceiling", "--transport", "sse", "--duration", 1)
        self.assertEqual(rc, 2)
        self.assertIn("WebSocket subscribers only", err)
        rc, _, err = run_bench(port, "--server", "ceiling", "--tls", "--duration", 1)
        self.assertEqual(rc, 2)
        self.assertIn("the ceiling (bench/ceiling.c) has no TLS", err)

    def test_nothing_listening(self):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        rc, r, err = run_bench(port, "--subscribers", 5, "--duration", 1, "--warmup", 0, "--quiet", timeout=20)
        self.assertEqual(rc, 1, err)
        self.assertFalse(r["ok"])
        self.assertEqual((r["connections"]["opened"], r["connections"]["failed"]), (0, 5))
        self.assertTrue(any("Connection refused" in e for e in r["errors"]), r["errors"])

    def test_wrong_api_key_is_a_failure(self):
        argv = [HERALD_BIN, "bench", "--port", str(self.server.port), "--api-key", "wrong", "--subscribers", 5,
                "--publish-rate", 50, "--duration", 1, "--warmup", 0, "--quiet", "--json", "-"]
        p = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30 * SLOW)
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertFalse(r["ok"])
        self.assertGreater(r["messages"]["publish_errors"], 0)
        text = " ".join(r["errors"])
        self.assertIn("no publication was accepted", text)
        self.assertIn("HTTP 401", text)

    def test_timeout_is_a_failure(self):
        r, _ = self.bench("--subscribers", 10, "--publish-rate", 10, "--duration", 30, "--warmup", 0,
                          "--quiet", timeout=1.5, expect_rc=1)
        self.assertTrue(any("timed out" in e for e in r["errors"]), r["errors"])

    def test_bad_flags_exit_2(self):
        cases = [
            (["--nope"], "unknown option"),
            (["--subscribers", "zero"], "--subscribers"),
            (["--subscribers"], "needs a value"),
            (["--transport=poll"], "--transport"),
            (["--server", "apache"], "--server"),
            (["--duration", "0"], "--duration"),
            (["--server", "ws-node", "--publish-via", "ws"], "ws-node"),
            (["--source-ips", "3", "--host", "10.1.2.3"], "--source-ips"),
            (["stray"], "unexpected argument"),
        ]
        for args, text in cases:
            p = subprocess.run([HERALD_BIN, "bench", "--api-key", "k"] + args, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10 * SLOW)
            self.assertEqual(p.returncode, 2, f"{args}: exit {p.returncode}, stderr {p.stderr!r}")
            self.assertIn(text, p.stderr.decode(), args)
            self.assertEqual(p.stdout, b"", args)
        env = {k: v for k, v in os.environ.items() if k != "HERALD_API_KEY"}
        p = subprocess.run([HERALD_BIN, "bench", "--publish-rate", "10"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=10 * SLOW)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--api-key", p.stderr.decode())

    def test_help(self):
        p = subprocess.run([HERALD_BIN, "bench", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10 * SLOW)
        self.assertEqual(p.returncode, 0)
        out = p.stdout.decode()
        for flag in ("--server", "--transport", "--subscribers", "--channels", "--connect-rate", "--source-ips",
                     "--publish-rate", "--publish-via", "--churn", "--server-pid", "--threads", "--json", "--tls"):
            self.assertIn(flag, out)
        p = subprocess.run([HERALD_BIN, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10 * SLOW)
        self.assertIn("herald bench", p.stdout.decode())


if __name__ == "__main__":
    main()
