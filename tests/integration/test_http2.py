"""test_http2 - HTTP/2 on Herald's listeners, with real clients.

curl (--http2-prior-knowledge on the cleartext port, --http2 over TLS with
a self-signed certificate made here), nghttp and h2load (nghttp2-client),
and a raw-frame client (h2_raw.py) for what the others will not do: several
SSE streams on one connection, a stream whose window is never opened again,
RFC 8441 WebSocket, and the abuse cases (rapid reset, CONTINUATION flood,
PING flood, header lists over the limit, too many streams), each answered
with a bounded cost: the stream's reset or a GOAWAY with the right code.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase  # noqa: E402
import h2_raw  # noqa: E402
from h2_raw import H2, ws_frame  # noqa: E402

API_KEY = "h2-test-key"
TMP = tempfile.mkdtemp(prefix="herald-h2-")
STATIC = os.path.join(TMP, "static")
os.makedirs(STATIC)
BIG = os.urandom(300 * 1024 + 7)
with open(os.path.join(STATIC, "big.bin"), "wb") as f:
    f.write(BIG)
with open(os.path.join(STATIC, "index.html"), "w") as f:
    f.write("<!doctype html><p>hello over h2</p>\n")


def make_cert():
    cert, key = os.path.join(TMP, "h2.crt"), os.path.join(TMP, "h2.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def curl(*args, h2c=True, timeout=10):
    """(http status, body, http version) of one curl call."""
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout * SLOW), "-o", "-",
                        "-w", "\n%{http_code} %{http_version}"] + (["--http2-prior-knowledge"] if h2c else [])
                       + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * SLOW + 5)
    body, _, tail = r.stdout.rpartition(b"\n")
    if r.returncode != 0:
        raise AssertionError(f"curl {args} failed ({r.returncode}): {r.stderr.decode()}")
    code, version = tail.decode().split()
    return int(code), body, version


def gauge(text, transport, tls="false"):
    m = re.search(r'herald_connections_by_transport\{transport="%s",tls="%s"\} (\d+)' % (transport, tls), text)
    return int(m.group(1)) if m else None


def reset_burst(h2, n):
    """n requests each reset at once (rapid reset), as one write."""
    burst = b""
    for _ in range(n):
        sid = h2.next_id
        h2.next_id += 2
        burst += h2_raw.frame(h2_raw.HEADERS, h2_raw.END_HEADERS | h2_raw.END_STREAM, sid,
                              h2_raw.hpack([(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                                            (":path", "/health")]))
        burst += h2_raw.frame(h2_raw.RST_STREAM, 0, sid, struct.pack(">I", h2_raw.CANCEL))
    return burst


def read_until(stream, marker, count=1):
    """Lines from a curl's stdout until marker was seen count times; fails at EOF."""
    got = b""
    while got.count(marker) < count:
        line = stream.readline()
        if not line:
            raise AssertionError(f"stream ended before {marker!r} x{count}: {got!r}")
        got += line
    return got


def sse_events(payload):
    return [json.loads(line[5:]) for line in payload.split(b"\n") if line.startswith(b"data:")]


class Http2Case(HeraldTestCase):
    server_args = ("--api-key", API_KEY, "--static", STATIC, "--http2.max-concurrent-streams", "20",
                   "--sse.max-queued-bytes", "64KiB", "--websocket.close-timeout", "1s")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server.port}"

    def publish(self, channel, data, h2c=True):
        code, body, _ = curl("-X", "POST", "-H", f"Authorization: apikey {API_KEY}", "--data-binary",
                             json.dumps({"channel": channel, "data": data}), self.base + "/api/publish", h2c=h2c)
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def metrics(self):
        return curl(self.base + "/metrics", h2c=False)[1].decode()

    def sse_data(self, h2, sid, timeout):
        """DATA of stream sid until the deadline (and WINDOW_UPDATEs for all of it)."""
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = h2.read_frame(deadline - time.monotonic())
            if f is None:
                break
            if f[0] == h2_raw.DATA and f[3]:
                h2.window_update(0, len(f[3]))
                h2.window_update(f[2], len(f[3]))
                if f[2] == sid:
                    got += f[3]
        return got

    # -- every endpoint -------------------------------------------------------

    def test_endpoints_h2c(self):
        code, body, ver = curl(self.base + "/health")
        self.assertEqual((code, ver, json.loads(body)), (200, "2", {"status": "ok"}))
        pub = self.publish("h2-api", {"n": 1})
        code, body, ver = curl("-X", "POST", "-H", f"Authorization: apikey {API_KEY}", "--data-binary",
                               json.dumps({"channel": "h2-api", "limit": 10}), self.base + "/api/history")
        self.assertEqual((code, ver), (200, "2"), body)
        self.assertEqual([p["data"] for p in json.loads(body)["publications"]], [{"n": 1}])
        self.assertEqual(json.loads(body)["offset"], pub["offset"])
        code, body, ver = curl(self.base + "/index.html")
        self.assertEqual((code, ver, body), (200, "2", b"<!doctype html><p>hello over h2</p>\n"))
        code, body, ver = curl(self.base + "/big.bin")
        self.assertEqual((code, ver, len(body), body == BIG), (200, "2", len(BIG), True))
        code, body, ver = curl("-I", self.base + "/index.html")
        self.assertEqual((code, ver), (200, "2"))
        code, body, ver = curl(self.base + "/metrics")
        self.assertEqual((code, ver), (200, "2"))
        self.assertIn(b"herald_connections_by_transport", body)
        code, body, ver = curl(self.base + "/nope")
        self.assertEqual((code, ver, json.loads(body)["status"]), (404, "2", 404))
        # HTTP/1.1 on the same port is unchanged
        code, body, ver = curl(self.base + "/health", h2c=False)
        self.assertEqual((code, ver), (200, "1.1"))

    def test_sse_and_resume(self):
        p = subprocess.Popen(["curl", "-sS", "-N", "--http2-prior-knowledge", "--max-time", str(10 * SLOW),
                              "-w", "%{http_version}", self.base + "/sse?channel=h2-sse"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            read_until(p.stdout, b"event: connected")
            first = self.publish("h2-sse", {"n": 1})
            self.publish("h2-sse", {"n": 2})
            lines = read_until(p.stdout, b'data: {"n"', 2)
        finally:
            p.kill()
            p.communicate()
        self.assertIn(b'data: {"n":1}', lines)
        # resume after n=1: only n=2 comes back
        last_id = f'{first["epoch"]}:{first["offset"]}'
        r = subprocess.run(["curl", "-sS", "-N", "--http2-prior-knowledge", "--max-time", str(2 * SLOW),
                            "-H", f"Last-Event-ID: {last_id}", self.base + "/sse?channel=h2-sse"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        datas = [d for d in sse_events(r.stdout) if "n" in d]
        self.assertEqual(datas, [{"n": 2}], r.stdout)

    def test_long_poll_and_stream(self):
        code, body, ver = curl("-X", "POST", self.base + "/poll/open")
        self.assertEqual((code, ver), (200, "2"), body)
        sess = json.loads(body)["session"]
        cmds = json.dumps({"id": 1, "connect": {}}) + "\n" + json.dumps({"id": 2, "subscribe": {"channel": "h2-poll"}})
        code, body, _ = curl("-X", "POST", "--data-binary", cmds, f"{self.base}/poll/send?session={sess}")
        self.assertEqual(code, 202, body)
        cursor, got, published = 0, [], False
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline and not any("pub" in m for m in got):
            if not published and any(m.get("id") == 2 for m in got):
                published = True
                self.publish("h2-poll", {"via": "poll"})
            code, body, ver = curl(f"{self.base}/poll?session={sess}&cursor={cursor}&timeout=1000")
            self.assertEqual((code, ver), (200, "2"), body)
            msg = json.loads(body)
            got += msg["messages"]
            cursor = msg["cursor"]
        self.assertEqual([m["pub"]["data"] for m in got if "pub" in m], [{"via": "poll"}])

        p = subprocess.Popen(["curl", "-sS", "-N", "--http2-prior-knowledge", "--max-time", str(10 * SLOW),
                              self.base + "/stream"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = json.loads(read_until(p.stdout, b"\n"))
            sess = first.get("session") or first.get("stream", {}).get("session")
            cmds = json.dumps({"id": 1, "connect": {}}) + "\n" + json.dumps(
                {"id": 2, "subscribe": {"channel": "h2-stream"}})
            code, body, _ = curl("-X", "POST", "--data-binary", cmds, f"{self.base}/stream/send?session={sess}")
            self.assertEqual(code, 202, body)
            while True:
                line = json.loads(read_until(p.stdout, b"\n"))
                if line.get("id") == 2:
                    self.publish("h2-stream", {"via": "stream"})
                if "pub" in line:
                    self.assertEqual(line["pub"]["data"], {"via": "stream"})
                    break
        finally:
            p.kill()
            p.communicate()

    def test_many_sse_streams_one_connection(self):
        h2 = H2(self.server.port)
        try:
            sids = [h2.request(f"/sse?channel=h2-many-{i % 3}") for i in range(8)]
            opened = set()
            deadline = time.monotonic() + 5 * SLOW
            while len(opened) < len(sids) and time.monotonic() < deadline:
                f = h2.read_frame(1)
                if f and f[0] == h2_raw.DATA and b"event: connected" in f[3]:
                    opened.add(f[2])
            self.assertEqual(opened, set(sids))
            m = self.metrics()
            self.assertEqual(gauge(m, "http2"), 1, m)
            self.assertGreaterEqual(gauge(m, "sse"), 8)
            for ch in range(3):
                self.publish(f"h2-many-{ch}", {"ch": ch})
            got = {}
            deadline = time.monotonic() + 5 * SLOW
            while len(got) < len(sids) and time.monotonic() < deadline:
                f = h2.read_frame(1)
                if f and f[0] == h2_raw.DATA:
                    for ev in sse_events(f[3]):
                        if "ch" in ev:
                            got[f[2]] = ev["ch"]
            self.assertEqual(got, {sid: i % 3 for i, sid in enumerate(sids)})
        finally:
            h2.close()

    def test_nghttp_and_h2load(self):
        r = subprocess.run(["nghttp", "-n", "-s", self.base + "/health", self.base + "/index.html",
                            self.base + "/big.bin"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(re.findall(rb"\b200\b", r.stdout)), 3, r.stdout)
        r = subprocess.run(["h2load", "-n", "400", "-c", "4", "-m", "10", self.base + "/health"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30 * SLOW)
        self.assertIn(b"400 succeeded, 0 failed", r.stdout, r.stdout)
        self.assertIn(b"Application protocol: h2c", r.stdout)

    # -- flow control -----------------------------------------------------------

    def test_slow_stream_reset_other_streams_go_on(self):
        """Stream A's window is never opened again: A alone is reset, B receives every publication."""
        h2 = H2(self.server.port)
        try:
            a = h2.request("/sse?channel=h2-slow")
            b = h2.request("/sse?channel=h2-slow")
            started = set()
            h2.until(lambda f: f[0] == h2_raw.DATA and (started.add(f[2]) or started >= {a, b}), 5 * SLOW)
            self.assertEqual(started & {a, b}, {a, b})
            h2.window_update(0, 1 << 30)  # the connection's window is never the limit
            payload = "x" * 4000
            got_b, reset_a = b"", None

            def read_for(seconds):
                nonlocal got_b, reset_a
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    f = h2.read_frame(max(0.0, deadline - time.monotonic()))
                    if f is None:
                        return
                    if f[0] == h2_raw.DATA and f[2] == b and f[3]:
                        got_b += f[3]
                        h2.window_update(b, len(f[3]))
                    if f[0] == h2_raw.RST_STREAM and f[2] == a:
                        reset_a = struct.unpack(">I", f[3])[0]
                    self.assertNotEqual(f[0], h2_raw.GOAWAY)

            for i in range(60):  # 240 KB: past A's 64 KiB window, its 16 KiB buffer and sse.max_queued_bytes
                self.publish("h2-slow", {"i": i, "p": payload})
                read_for(0.02)
            deadline = time.monotonic() + 10 * SLOW
            while time.monotonic() < deadline and (reset_a is None or got_b.count(b'"i":') < 60):
                read_for(0.2)
            self.assertEqual(reset_a, h2_raw.CANCEL)
            self.assertEqual([e["i"] for e in sse_events(got_b) if "i" in e], list(range(60)))
        finally:
            h2.close()

    # -- WebSocket over HTTP/2 (RFC 8441) ---------------------------------------

    def test_websocket_extended_connect(self):
        h2 = H2(self.server.port)
        try:
            f = h2.until(lambda f: f[0] == h2_raw.SETTINGS and not f[1] & h2_raw.ACK)
            self.assertEqual(h2.server_settings.get(h2_raw.SETTINGS_ENABLE_CONNECT_PROTOCOL), 1)
            sid = h2.request("/ws/echo", method="CONNECT", protocol="websocket", end=False,
                             headers=[("sec-websocket-version", "13")])
            f = h2.until(lambda f: f[0] == h2_raw.HEADERS and f[2] == sid)
            self.assertEqual(f[3][:1], b"\x88", "expected :status 200")
            self.assertFalse(f[1] & h2_raw.END_STREAM)
            h2.data(sid, ws_frame(b"hello over h2"))
            f = h2.until(lambda f: f[0] == h2_raw.DATA and f[2] == sid)
            self.assertEqual(f[3], b"\x81\x0dhello over h2")
            # permessage-deflate as on HTTP/1.1: a long message comes back compressed (RSV1)
            sid = h2.request("/ws/echo", method="CONNECT", protocol="websocket", end=False,
                             headers=[("sec-websocket-version", "13"),
                                      ("sec-websocket-extensions", "permessage-deflate")])
            f = h2.until(lambda f: f[0] == h2_raw.HEADERS and f[2] == sid)
            self.assertEqual(f[3][:1], b"\x88")
            h2.data(sid, ws_frame(b"abc" * 200))
            f = h2.until(lambda f: f[0] == h2_raw.DATA and f[2] == sid)
            self.assertEqual(f[3][0], 0xC1, f[3][:4])  # FIN + RSV1 + text
            self.assertLess(len(f[3]), 100)
            # native protocol on /ws: connect, subscribe, receive a publication
            sid = h2.request("/ws", method="CONNECT", protocol="websocket", end=False,
                             headers=[("sec-websocket-version", "13")])
            f = h2.until(lambda f: f[0] == h2_raw.HEADERS and f[2] == sid)
            self.assertEqual(f[3][:1], b"\x88")
            h2.data(sid, ws_frame(json.dumps({"id": 1, "connect": {}}).encode() + b"\n" + json.dumps(
                {"id": 2, "subscribe": {"channel": "h2-ws"}}).encode()))
            got = b""
            deadline = time.monotonic() + 5 * SLOW
            while b'"id":2' not in got and time.monotonic() < deadline:
                f = h2.read_frame(1)
                if f and f[0] == h2_raw.DATA and f[2] == sid:
                    got += f[3]
            self.assertIn(b'"id":2', got)
            self.publish("h2-ws", {"via": "ws-h2"})
            f = h2.until(lambda f: f[0] == h2_raw.DATA and f[2] == sid and b"ws-h2" in f[3], 5 * SLOW)
            self.assertIsNotNone(f)
            # CONNECT without :protocol is refused on its stream
            sid = h2.request("/ws", method="CONNECT", end=False)
            f = h2.until(lambda f: f[0] in (h2_raw.HEADERS, h2_raw.RST_STREAM) and f[2] == sid)
            self.assertIsNotNone(f)
            self.assertNotEqual(f[3][:1], b"\x88")
        finally:
            h2.close()

    # -- limits and abuse -----------------------------------------------------

    def test_header_list_too_large_431(self):
        code, body, ver = curl("-H", "X-Big: " + "a" * 20000, self.base + "/health")
        self.assertEqual((code, ver), (431, "2"), body)
        self.assertEqual(json.loads(body)["status"], 431)

    def test_too_many_streams_refused(self):
        h2 = H2(self.server.port)
        try:
            sids = [h2.request("/sse?channel=h2-count") for _ in range(21)]  # before our SETTINGS' ACK
            f = h2.until(lambda f: f[0] == h2_raw.RST_STREAM, 5 * SLOW)
            self.assertIsNotNone(f)
            self.assertEqual((f[2], struct.unpack(">I", f[3])[0]), (sids[-1], h2_raw.REFUSED_STREAM))
        finally:
            h2.close()
        self.assertEqual(curl(self.base + "/health")[0], 200)

    def test_rapid_reset_goaway(self):
        h2 = H2(self.server.port)
        try:
            try:
                h2.send(reset_burst(h2, 400))  # more than http2.max_resets_per_second (200) at once
            except OSError:
                pass
            self.assertEqual(h2.goaway(5 * SLOW), h2_raw.ENHANCE_YOUR_CALM)
        finally:
            h2.close()

    def test_continuation_flood_goaway(self):
        h2 = H2(self.server.port)
        try:
            block = h2_raw.hpack([(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/health")])
            flood = h2_raw.frame(h2_raw.HEADERS, 0, 1, block[:5])
            flood += b"".join(h2_raw.frame(h2_raw.CONTINUATION, 0, 1, b"") for _ in range(1000))
            try:
                h2.send(flood)
            except OSError:
                pass
            self.assertEqual(h2.goaway(5 * SLOW), h2_raw.ENHANCE_YOUR_CALM)
        finally:
            h2.close()

    def test_ping_flood_goaway(self):
        """PINGs from a client that reads nothing: the ACKs owed are bounded, then GOAWAY."""
        h2 = H2(self.server.port, rcvbuf=4096)
        try:
            ping = h2_raw.frame(h2_raw.PING, 0, 0, b"12345678")
            sent = 0
            h2.sock.settimeout(0.5)
            deadline = time.monotonic() + 20 * SLOW
            while time.monotonic() < deadline:
                try:
                    h2.send(ping * 4096)
                    sent += 4096
                except (socket.timeout, TimeoutError, OSError):
                    break  # the server stopped reading us (or closed)
            self.assertLess(sent, 2_000_000, "the server kept answering PINGs to a client that reads nothing")
            h2.sock.settimeout(5)
            self.assertEqual(h2.goaway(10 * SLOW), h2_raw.ENHANCE_YOUR_CALM)
        finally:
            h2.close()
        self.assertEqual(curl(self.base + "/health")[0], 200)


class Http2Drain(unittest.TestCase):
    def test_sigterm_ends_h2_streams_and_exits(self):
        srv = Herald()
        srv.start()
        p = subprocess.Popen(["curl", "-sS", "-N", "--http2-prior-knowledge", "--max-time", str(10 * SLOW),
                              f"http://127.0.0.1:{srv.port}/sse?channel=h2-drain"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            read_until(p.stdout, b"event: connected")
            srv.signal(signal.SIGTERM)
            out, err = p.communicate(timeout=10 * SLOW)
        finally:
            p.kill()
            rc = srv.stop()
        self.assertIn(b"event: disconnect", out)
        self.assertIn(b'"code":3001', out)
        self.assertEqual(p.returncode, 0, err)  # the stream ended cleanly (END_STREAM), not reset
        self.assertEqual(rc, 0)


class Http2Refused(HeraldTestCase):
    server_args = ("--limits.connections-per-ip", "1")

    def test_refused_at_accept_answers_503_over_h2(self):
        hold = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)  # the address's one connection
        try:
            hold.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(hold.recv(4096).startswith(b"HTTP/1.1 200"))
            code, body, ver = curl("-D", "-", f"http://127.0.0.1:{self.server.port}/health")
            self.assertEqual((code, ver), (503, "2"), body)
            self.assertIn(b"retry-after: ", body)
            self.assertIn(b"too many connections from your address", body)
        finally:
            hold.close()


class Http2Backpressure(HeraldTestCase):
    # reading pauses at a quarter of the queue bound (256 KiB), far below the bound itself
    server_args = ("--websocket.max-queued-bytes", "1MiB")

    def test_window_stays_closed_while_the_stream_does_not_read(self):
        """A WebSocket whose echoes are not read pauses reading: its window is not opened again, so the
        client cannot make the server hold more than one window of its input; it opens once it reads."""
        h2 = H2(self.server.port, settings={h2_raw.SETTINGS_INITIAL_WINDOW_SIZE: 0})  # no echo leaves at first
        try:
            sid = h2.request("/ws/echo", method="CONNECT", protocol="websocket", end=False,
                             headers=[("sec-websocket-version", "13")])
            self.assertEqual(h2.until(lambda f: f[0] == h2_raw.HEADERS and f[2] == sid)[3][:1], b"\x88")
            msg = ws_frame(b"m" * 992)  # 1000 bytes on the wire (8 of frame header), echoed as 996
            self.assertEqual(len(msg), 1000)
            # send as fast as the server's window allows, for a while
            granted, sent = 0, 0
            deadline = time.monotonic() + 1.5 * SLOW
            while time.monotonic() < deadline and sent < 4_000_000:
                while granted + 65535 - sent >= 1000 and sent < 4_000_000:
                    h2.data(sid, msg)
                    sent += 1000
                f = h2.read_frame(0.1)
                if f and f[0] == h2_raw.WINDOW_UPDATE and f[2] == sid:
                    granted += struct.unpack(">I", f[3])[0]
            self.assertLess(sent, 1_000_000, "the window was opened for bytes the stream had not read")
            # the client reads again: the echoes flow, the stream reads the rest, the window opens (nghttp2
            # sends WINDOW_UPDATE once half a window is read), and 30 more messages fit
            h2.window_update(sid, 1 << 20)
            h2.window_update(0, 1 << 20)
            echoed = 0

            def read_for(seconds):
                nonlocal echoed, granted
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and echoed < sent // 1000 * 996:
                    f = h2.read_frame(0.3)
                    if f and f[0] == h2_raw.WINDOW_UPDATE and f[2] == sid:
                        granted += struct.unpack(">I", f[3])[0]
                    if f and f[0] == h2_raw.DATA and f[2] == sid:
                        echoed += len(f[3])

            read_for(5 * SLOW)
            for _ in range(min(30, (granted + 65535 - sent) // 1000)):
                h2.data(sid, msg)
                sent += 1000
            read_for(5 * SLOW)
            self.assertEqual(echoed, sent // 1000 * 996)
            self.assertGreater(granted, sent - 65535 // 2, "the window did not open as the stream read")
        finally:
            h2.close()


class Http2Settings(HeraldTestCase):
    server_args = ("--http2.initial-window-size", "1024", "--http2.max-header-list-size", "4KiB",
                   "--http2.max-concurrent-streams", "7", "--http2.max-resets-per-second", "10")

    def test_settings_are_the_options(self):
        h2 = H2(self.server.port)
        try:
            h2.until(lambda f: f[0] == h2_raw.SETTINGS and not f[1] & h2_raw.ACK)
            self.assertEqual({k: h2.server_settings.get(k) for k in (3, 4, 6, 8)},
                             {3: 7, 4: 1024, 6: 4096, 8: 1})
        finally:
            h2.close()
        base = f"http://127.0.0.1:{self.server.port}"
        self.assertEqual(curl("-H", "X-Mid: " + "a" * 3000, base + "/health")[0], 200)
        code, body, _ = curl("-H", "X-Big: " + "a" * 4100, base + "/health")
        self.assertEqual(code, 431, body)
        # a body larger than the 1024-byte window still arrives (WINDOW_UPDATEs as it is read)
        code, body, _ = curl("-X", "POST", "--data-binary", "x" * 50000, base + "/http/echo")
        self.assertEqual((code, len(body)), (200, 50000))

    def test_resets_per_second_option(self):
        h2 = H2(self.server.port)
        try:
            h2.send(reset_burst(h2, 12))  # past 10 per second, far below the default 200
            self.assertEqual(h2.goaway(5 * SLOW), h2_raw.ENHANCE_YOUR_CALM)
        finally:
            h2.close()


class Http2Tls(HeraldTestCase):
    @classmethod
    def make_server(cls):
        cert, key = make_cert()
        return Herald("--tls-cert", cert, "--tls-key", key, "--api-key", API_KEY, "--static", STATIC)

    def test_alpn_h2_and_http11(self):
        base = f"https://localhost:{self.server.port}"
        code, body, ver = curl("-k", "--http2", base + "/health", h2c=False)
        self.assertEqual((code, ver), (200, "2"))
        code, body, ver = curl("-k", "--http2", base + "/big.bin", h2c=False)
        self.assertEqual((code, ver, body == BIG), (200, "2", True))
        code, body, ver = curl("-k", "--http1.1", base + "/health", h2c=False)
        self.assertEqual((code, ver), (200, "1.1"))
        m = curl("-k", "--http1.1", base + "/metrics", h2c=False)[1].decode()
        self.assertGreaterEqual(gauge(m, "http2", "true") or 0, 0)

    def test_websocket_over_tls_h2(self):
        h2 = H2(self.server.port, tls=True)
        try:
            sid = h2.request("/ws/echo", method="CONNECT", protocol="websocket", end=False,
                             headers=[("sec-websocket-version", "13")])
            f = h2.until(lambda f: f[0] == h2_raw.HEADERS and f[2] == sid)
            self.assertEqual(f[3][:1], b"\x88")
            h2.data(sid, ws_frame(b"tls"))
            f = h2.until(lambda f: f[0] == h2_raw.DATA and f[2] == sid)
            self.assertEqual(f[3], b"\x81\x03tls")
        finally:
            h2.close()


class Http2Disabled(HeraldTestCase):
    server_args = ("--http2.enabled", "false")

    def test_prior_knowledge_refused(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        try:
            s.sendall(h2_raw.PREFACE)
            data = s.recv(4096)
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 "), data)
        self.assertFalse(data.startswith(b"HTTP/1.1 2"), data)


if __name__ == "__main__":
    unittest.main(verbosity=2)
