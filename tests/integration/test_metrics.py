#!/usr/bin/env python3
"""GET /metrics (docs/operations.md) of the real herald binary: the
Prometheus text format 0.0.4 parsed line by line with a strict parser
(names, HELP/TYPE once per family before its samples, label syntax),
exact counter values after a known workload (N WebSocket connections, K
echoed messages; N raw WebSocket + M SSE subscribers and K API publishes:
connections by transport, publications, deliveries, encodes, subscriptions),
405 for other methods, `promtool check metrics` on a scrape taken under
load, and a real Prometheus server (/usr/bin/prometheus) scraping Herald
every second, asked through its HTTP API for herald_connections.
"""

import os
import re
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, RawWS, main  # noqa: E402
from herald_native import API_KEY, Api  # noqa: E402
from redis_cluster import RedisServer, node, redis_available  # noqa: E402
from test_sse import SSE  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

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

    def test_websocket_closes_by_code_class(self):
        cls = lambda c: f'code_class="{c}"'  # noqa: E731
        before = parse(self.scrape())
        for code in (1000, 1000, 1001, 4001, 3000):
            ws = self.server.ws()
            ws.send_close(code)
            ws.expect_close([code])
            ws.close_socket()
        self.server.ws().close_socket()  # no close handshake
        want = {"1000": 2, "1001": 1, "4xxx": 1, "3xxx": 1, "none": 1, "1xxx_error": 0}
        deadline = time.monotonic() + 5 * SLOW
        while True:
            after = parse(self.scrape())
            got = {k: value(after, "herald_websocket_closes_total", cls(k))
                   - value(before, "herald_websocket_closes_total", cls(k)) for k in want}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(got, want)

    def test_queued_bytes_of_a_reader_that_stops(self):
        """An echo client that sends and never reads: its answers queue up in
        the server (herald_queued_bytes) until reading pauses (a quarter of
        websocket.max_queued_bytes), and are gone when it disconnects."""
        with Herald("--websocket.max-queued-bytes", "1MiB", workers=1) as srv:
            ws = srv.ws()
            ws.sock.settimeout(None)
            sent = [0]

            def sender():  # blocking sends: the kernel's buffers fill, then the server's queue
                try:
                    while True:
                        ws.send_binary(b"q" * 60000)
                        sent[0] += 1
                except OSError:
                    pass  # closed below while blocked: the server stopped reading (backpressure)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            # wait until the sender is blocked (no frame for 0.5 s): the server has stopped reading, and
            # what it could not write stays queued (how much the kernel's autotuned buffers took varies)
            deadline, last = time.monotonic() + 10 * SLOW, -1
            while (sent[0] != last or not last) and time.monotonic() < deadline:
                last = sent[0]
                time.sleep(0.5)
            self.assertGreater(value(scrape(srv), "herald_queued_bytes"), 0)
            self.assertLess(value(scrape(srv), "herald_queued_bytes"), 1 << 20)
            ws.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked send
            ws.close_socket()
            t.join(5 * SLOW)
            self.assertEqual(wait_value(srv, "herald_queued_bytes", "", 0), 0)

    def test_other_methods_get_405_json(self):
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.scrape("POST")
        self.assertEqual(cm.exception.code, 405)
        self.assertIn(b'"error"', cm.exception.read())

    @unittest.skipUnless(shutil.which("promtool"), "promtool not installed")
    def test_promtool_accepts_it_under_load(self):
        """Scraped while WebSocket clients echo as fast as they can."""
        stop = threading.Event()

        def load():
            ws = self.server.ws()
            try:
                while not stop.is_set():
                    ws.send_text("x" * 100)
                    ws.recv_message(timeout=5 * SLOW)
            finally:
                ws.close_socket()

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.2)
            for _ in range(3):
                text = self.scrape()
                parse(text)
                r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            stop.set()
            for t in threads:
                t.join(10)


def scrape(srv):
    with urllib.request.urlopen(srv.url("/metrics"), timeout=5 * SLOW) as r:
        return parse(r.read().decode())


def wait_value(srv, name, labels, want, timeout=5):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        got = value(scrape(srv), name, labels)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


class WorkloadTest(HeraldTestCase):
    """N raw WebSocket + M SSE subscribers of one channel over two workers,
    K publications through the server API: the exact numbers."""
    server_args = ("--api-key", API_KEY, "--metrics.publish_sample", "1")

    def test_transports_publications_deliveries(self):
        n, m, k, ch = 12, 2, 4, "metrics-load"
        raw = lambda tls="false": f'transport="raw",tls="{tls}"'  # noqa: E731
        sse = 'transport="sse",tls="false"'
        before = scrape(self.server)
        wss = [self.server.ws(f"/ws/raw?channel={ch}") for _ in range(n)]
        sses = [SSE(self.server, f"/sse?channel={ch}") for _ in range(m)]
        try:
            self.assertEqual(wait_value(self.server, "herald_subscriptions", "", n + m), n + m)
            fams = scrape(self.server)
            self.assertEqual(value(fams, "herald_presence_entries"), n + m)  # channels.presence: one per client
            self.assertEqual(value(fams, "herald_connections_by_transport", raw()), n)
            self.assertEqual(value(fams, "herald_connections_by_transport", raw("true")), 0)
            self.assertEqual(value(fams, "herald_connections_by_transport", sse), m)
            for lab in (raw(), sse):
                self.assertEqual(value(fams, "herald_connections_by_transport_total", lab),
                                 value(before, "herald_connections_by_transport_total", lab)
                                 + (n if "raw" in lab else m))
            for t, count in (("raw", n), ("sse", m), ("websocket", 0)):
                hs = 'transport="%s"' % t
                self.assertEqual(value(fams, "herald_handshake_duration_seconds_count", hs)
                                 - value(before, "herald_handshake_duration_seconds_count", hs), count, t)
            self.assertLess(value(fams, "herald_handshake_duration_seconds_sum", 'transport="raw"'), 5 * SLOW * n)
            api = Api(self.server)
            for i in range(k):
                api.publish(ch, {"i": i})
            api.close()
            for ws in wss:
                for i in range(k):
                    self.assertEqual(json.loads(ws.recv_message(timeout=5 * SLOW)[1]), {"i": i})
            want = value(before, "herald_deliveries_total") + k * (n + m)
            self.assertEqual(wait_value(self.server, "herald_deliveries_total", "", want), want)
            fams = scrape(self.server)
            self.assertEqual(value(fams, "herald_publications_total", 'source="api"'),
                             value(before, "herald_publications_total", 'source="api"') + k)
            self.assertEqual(value(fams, "herald_publications_total", 'source="client"'),
                             value(before, "herald_publications_total", 'source="client"'))
            encodes = value(fams, "herald_encodes_total") - value(before, "herald_encodes_total")
            self.assertGreaterEqual(encodes, k)
            # per publication and worker: the raw data, its WebSocket frame, the SSE event
            self.assertLessEqual(encodes, k * 2 * 3, "encoded once per publication and form, not per subscriber")
            # every publication sampled: at least one observation, at most one per publication and worker
            timed = value(fams, "herald_publish_to_write_seconds_count") - \
                value(before, "herald_publish_to_write_seconds_count")
            self.assertGreaterEqual(timed, 1)
            self.assertLessEqual(timed, k * 2)
            self.assertLess(value(fams, "herald_publish_to_write_seconds_sum"), 5 * SLOW * timed)
        finally:
            for ws in wss:
                ws.close_socket()
            for s in sses:
                s.conn.close()
        self.assertEqual(wait_value(self.server, "herald_connections_by_transport", raw(), 0), 0)
        self.assertEqual(wait_value(self.server, "herald_connections_by_transport", sse, 0), 0)
        self.assertEqual(wait_value(self.server, "herald_subscriptions", "", 0), 0)
        self.assertEqual(wait_value(self.server, "herald_presence_entries", "", 0), 0)


class RefusedTest(unittest.TestCase):
    """Refused handshakes counted by reason, and the log lines the rate limit
    held back counted too (docs/operations.md, Logs)."""

    def test_refusals_by_reason_and_suppressed_lines(self):
        with Herald("--server.log-refused-rate", "1", workers=1) as srv:
            before = scrape(srv)
            for _ in range(3):
                RawWS.connect(srv.addr, "/ws", headers=[("Origin", "https://evil.example")], expect_status=403)
            for _ in range(2):
                with socket.create_connection(srv.addr, timeout=5 * SLOW) as s:
                    s.sendall(b"GET /ws HTTP/1.1\r\nHost x\r\n\r\n")  # no colon: malformed
                    self.assertIn(b" 400 ", s.recv(4096))
            after = scrape(srv)

            def delta(name, labels=""):
                return value(after, name, labels) - value(before, name, labels)
            self.assertEqual(delta("herald_connections_refused_total", 'reason="origin"'), 3)
            self.assertEqual(delta("herald_connections_refused_total", 'reason="bad_request"'), 2)
            self.assertEqual(delta("herald_connections_refused_total", 'reason="token"'), 0)
            # one line a second: of the five refusals in well under a second, at least three were held back
            self.assertGreaterEqual(delta("herald_log_suppressed_total"), 3)
            lines = [ln for ln in srv.output().splitlines() if ln.split()[2:3] == ["conn_refused"]]
            self.assertEqual(len(lines), 5 - int(delta("herald_log_suppressed_total")), lines)


class BackendMetricsTest(unittest.TestCase):
    """herald_proxy_* and herald_webhook_* appear when the hooks are set,
    and the exposition stays valid (promtool)."""

    def test_proxy_and_webhook_families(self):
        port = free_port()  # nothing listens there: calls fail, events wait
        with Herald("--proxy.connect_url", f"http://127.0.0.1:{port}/connect", "--webhook.url",
                    f"http://127.0.0.1:{port}/hook", workers=2) as srv:
            ws = srv.ws("/ws")
            ws.send_text(json.dumps({"id": 1, "connect": {}}))
            ws.recv_message(timeout=10 * SLOW)
            ws.close_socket()
            text = urllib.request.urlopen(srv.url("/metrics"), timeout=5 * SLOW).read().decode()
            fams = parse(text)
            self.assertGreaterEqual(value(fams, "herald_proxy_calls_total"), 1)
            self.assertGreaterEqual(sum(v for _, _, v in fams["herald_proxy_failures_total"]["samples"]), 1)
            for name in ("herald_webhook_queued", "herald_webhook_sent_total", "herald_webhook_dropped_total"):
                self.assertIn(name, fams)
            if shutil.which("promtool"):
                r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


@unittest.skipUnless(redis_available(), "redis-server not installed")
class RedisMetricsTest(unittest.TestCase):
    """herald_redis_* per shard: up, commands, latency, errors, reconnects
    across a Redis restart."""

    def test_shard_state_and_commands(self):
        with RedisServer() as r, node(r.addr) as srv:
            lab = f'shard="{r.addr}"'
            self.assertEqual(wait_value(srv, "herald_redis_shard_up", lab, 1), 1)
            before = scrape(srv)
            api = Api(srv)
            for i in range(3):
                api.publish("redis-metrics", {"i": i})
            api.close()
            fams = scrape(srv)
            cmd = lambda c: f'{lab},command="{c}"'  # noqa: E731
            # a publication sent alone is one EVALSHA of the publish script
            self.assertGreaterEqual(value(fams, "herald_redis_commands_total", cmd("evalsha"))
                                    - value(before, "herald_redis_commands_total", cmd("evalsha")), 3)
            names = {ln for _, ln, _ in fams["herald_redis_commands_total"]["samples"]}
            self.assertEqual(len(names), 9, names)
            self.assertGreater(value(fams, "herald_redis_command_duration_seconds_count", lab),
                               value(before, "herald_redis_command_duration_seconds_count", lab))
            self.assertEqual(value(fams, "herald_redis_reconnects_total", lab), 0)
            r.kill()
            self.assertEqual(wait_value(srv, "herald_redis_shard_up", lab, 0), 0)
            r.restart()
            self.assertEqual(wait_value(srv, "herald_redis_shard_up", lab, 1, timeout=10), 1)
            self.assertEqual(value(scrape(srv), "herald_redis_reconnects_total", lab), 1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(os.access(PROMETHEUS, os.X_OK), f"{PROMETHEUS} not installed")
class PrometheusServerTest(unittest.TestCase):
    """A real Prometheus scrapes Herald every second; its query API must
    return the number of connections Herald has open."""

    def test_prometheus_scrapes_and_answers_a_query(self):
        with Herald(workers=2) as srv, tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "prometheus.yml")
            with open(conf, "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        "scrape_configs:\n  - job_name: herald\n    static_configs:\n"
                        f"      - targets: ['127.0.0.1:{srv.port}']\n")
            port = free_port()
            wss = [srv.ws() for _ in range(3)]
            prom = subprocess.Popen([PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={tmp}/data",
                                     f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{port}/api/v1/query?query=herald_connections"
                deadline, got = time.monotonic() + 30 * SLOW, None
                while time.monotonic() < deadline:
                    try:
                        with urllib.request.urlopen(url, timeout=5) as r:
                            res = json.loads(r.read())["data"]["result"]
                        if res:
                            got = float(res[0]["value"][1])
                            if got == 4:
                                break
                    except (urllib.error.URLError, ConnectionError, KeyError):
                        pass
                    time.sleep(0.5)
                # the 3 WebSockets and Prometheus's own keep-alive scrape connection
                self.assertEqual(got, 4, "Prometheus's herald_connections after scraping")
                up = f"http://127.0.0.1:{port}/api/v1/query?query=up%7Bjob%3D%22herald%22%7D"
                with urllib.request.urlopen(up, timeout=5) as r:
                    self.assertEqual(json.loads(r.read())["data"]["result"][0]["value"][1], "1")
            finally:
                prom.terminate()
                prom.wait(10)
                for ws in wss:
                    ws.close_socket()


if __name__ == "__main__":
    main()
