"""test_h2_output - an HTTP/2 stream's output bounds, as a client sees them.

A stream's pending DATA (the bytes its window has not let out yet) counts
within its transport's queue bound: an SSE stream over h2 that does not read
is reset (RST_STREAM CANCEL, its slow-consumer cut) once the bytes it has
been offered pass sse.max_queued_bytes, as over HTTP/1.1, not at about
twice that after a small WINDOW_UPDATE let the stream take a whole batch
(and a raw WebSocket over h2 at websocket.max_queued_bytes);
another stream of the same connection and an HTTP/1.1 subscriber receive
everything, and herald_queued_bytes counts those pending bytes while they
wait and drops back when the connection goes. http2.max_queued_acks is its
own bound, not http2.max_resets_per_second.
"""

import json
import os
import re
import socket
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, HeraldTestCase, HttpConn  # noqa: E402
import h2_raw  # noqa: E402
from h2_raw import H2  # noqa: E402

API_KEY = "h2-output-key"
LIMIT = 64 * 1024  # sse.max_queued_bytes and websocket.max_queued_bytes below
PAYLOAD = "x" * 1000
OPEN = 3000  # the one WINDOW_UPDATE of the stream that does not read


class Api:
    """A keep-alive HTTP/1.1 connection for publishing and /metrics."""

    def __init__(self, port):
        self.http = HttpConn(("127.0.0.1", port), timeout=10 * SLOW)

    def close(self):
        self.http.close()

    def publish(self, channel, data):
        body = json.dumps({"channel": channel, "data": data}).encode()
        self.http.send(b"POST /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: apikey " + API_KEY.encode()
                       + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        r = self.http.read_response(method="POST", timeout=10 * SLOW)
        assert r.status == 200, (r.status, r.body)

    def metric(self, name):
        self.http.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        r = self.http.read_response(timeout=10 * SLOW)
        return int(re.search(rb"^%s (\d+)" % name.encode(), r.body, re.M).group(1))

    def queued_bytes(self):
        return self.metric("herald_queued_bytes")


class SseReader:
    """An HTTP/1.1 SSE subscriber: the bytes it has read."""

    def __init__(self, port, channel):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
        self.sock.sendall(b"GET /sse?channel=%s HTTP/1.1\r\nHost: t\r\n\r\n" % channel.encode())
        self.got = b""

    def read_until(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while not pred(self.got) and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            if not chunk:
                break
            self.got += chunk
        return pred(self.got)


def count_events(data):
    return data.count(b'"p":"')


class Http2StreamBound(HeraldTestCase):
    server_args = ("--api-key", API_KEY, "--sse.max-queued-bytes", "64KiB", "--websocket.max-queued-bytes", "64KiB",
                   "--websocket.close-timeout", "1s")

    def frames(self, h2, b, seconds, seen):
        """Frames for seconds: B's DATA (its window opened again), A's RST_STREAM, never a GOAWAY."""
        deadline = time.monotonic() + seconds
        while True:
            f = h2.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return
            self.assertNotEqual(f[0], h2_raw.GOAWAY)
            if f[0] == h2_raw.DATA and f[3]:
                seen.setdefault(f[2], bytearray()).extend(f[3])
                if f[2] == b:
                    h2.window_update(b, len(f[3]))
            if f[0] == h2_raw.RST_STREAM:
                seen.setdefault("rst", {})[f[2]] = struct.unpack(">I", f[3])[0]

    def open_stream(self, h2, path, ws):
        if ws:
            return h2.request(path, method="CONNECT", protocol="websocket", end=False,
                              headers=[("sec-websocket-version", "13")])
        return h2.request(path)

    def cut_case(self, ch, path, ws):
        """Streams A and B on one connection whose windows start closed; B's is opened as it reads, A's once
        by OPEN bytes when 40 KiB wait. Returns the bytes A was offered (as B received them) when the server
        counted A's slow-consumer cut, after checking B and an HTTP/1.1 SSE subscriber got all 120 events and
        A was reset."""
        h2 = H2(self.server.port, settings={h2_raw.SETTINGS_INITIAL_WINDOW_SIZE: 0})
        api = Api(self.server.port)
        h1 = SseReader(self.server.port, ch)
        try:
            h2.window_update(0, 1 << 30)  # the connection's window is never the limit
            a = self.open_stream(h2, path, ws)
            b = self.open_stream(h2, path, ws)
            h2.window_update(b, 1 << 20)
            heads = set()
            h2.until(lambda f: f[0] == h2_raw.HEADERS and (heads.add(f[2]) or heads >= {a, b}), 5 * SLOW)
            self.assertEqual(heads & {a, b}, {a, b}, "the streams were not answered")
            self.assertTrue(h1.read_until(lambda g: b"connected" in g, 5 * SLOW))
            seen = {b: bytearray()}
            slow0 = api.metric("herald_slow_consumer_disconnects_total")
            offered, cut_at, opened = 0, None, False
            for i in range(120):
                before = len(seen[b])
                api.publish(ch, {"i": i, "p": PAYLOAD})
                want = count_events(bytes(seen[b])) + 1
                deadline = time.monotonic() + 5 * SLOW
                while count_events(bytes(seen[b])) < want and time.monotonic() < deadline:
                    self.frames(h2, b, 0.05, seen)
                self.assertEqual(count_events(bytes(seen[b])), want, f"B missed event {i}")
                offered += len(seen[b]) - before  # A was offered the same bytes as B
                if cut_at is None and api.metric("herald_slow_consumer_disconnects_total") > slow0:
                    cut_at = offered
                if not opened and offered >= 40 * 1024:
                    opened = True
                    h2.window_update(a, OPEN)  # OPEN bytes out: the stream's buffer has room again
            self.assertIsNotNone(cut_at, "A was not cut")
            deadline = time.monotonic() + 5 * SLOW
            while a not in seen.get("rst", {}) and time.monotonic() < deadline:
                self.frames(h2, b, 0.1, seen)
            self.assertEqual(seen.get("rst", {}).get(a), h2_raw.CANCEL, "A was not reset")
            self.assertLessEqual(len(seen.get(a, b"")), OPEN)  # only what its window let out
            self.assertEqual(list(range(120)), [int(m) for m in re.findall(rb'"i":(\d+)', bytes(seen[b]))])
            self.assertTrue(h1.read_until(lambda g: count_events(g) >= 120, 5 * SLOW), "the HTTP/1.1 subscriber")
            return cut_at
        finally:
            h2.close()
            api.close()
            h1.sock.close()

    def assert_cut_near(self, cut_at):
        # within a publication (2 events of slack) of the bound, counting what the window let out
        self.assertLessEqual(cut_at, LIMIT + OPEN + 2 * 1100, f"A was cut only at {cut_at} bytes offered")
        self.assertGreaterEqual(cut_at, LIMIT - 8 * 1024, f"A was cut early, at {cut_at} bytes offered")

    def test_slow_sse_stream_cut_at_its_bound_not_twice(self):
        """On the old code the stream took all of its queue into its buffer once its window opened a little,
        and was cut at ~1.5-2x sse.max_queued_bytes."""
        self.assert_cut_near(self.cut_case("h2-bound-sse", "/sse?channel=h2-bound-sse", ws=False))

    def test_slow_websocket_cut_at_its_bound(self):
        """The same for a raw WebSocket over h2 (RFC 8441) and websocket.max_queued_bytes."""
        self.assert_cut_near(self.cut_case("h2-bound-ws", "/ws/raw?channel=h2-bound-ws", ws=True))

    def test_pending_bytes_count_in_queued_bytes(self):
        """What a stream's window holds back counts in herald_queued_bytes while it waits, and is gone again
        once the connection is."""
        ch = "h2-gauge"
        api = Api(self.server.port)
        try:
            base = api.queued_bytes()
            h2 = H2(self.server.port, settings={h2_raw.SETTINGS_INITIAL_WINDOW_SIZE: 0})
            try:
                h2.window_update(0, 1 << 30)
                a = h2.request("/sse?channel=" + ch)
                self.assertIsNotNone(h2.until(lambda f: f[0] == h2_raw.HEADERS and f[2] == a, 5 * SLOW))
                for i in range(30):  # ~31 KB: under the bound, over the stream's 16 KiB buffer
                    api.publish(ch, {"i": i, "p": PAYLOAD})
                time.sleep(0.2 * SLOW)
                held = api.queued_bytes() - base
                self.assertGreaterEqual(held, 30 * 1000, f"herald_queued_bytes counted {held} of ~31 KB held")
                self.assertLess(held, LIMIT)
            finally:
                h2.close()
            deadline = time.monotonic() + 5 * SLOW
            while api.queued_bytes() > base and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(api.queued_bytes(), base)
        finally:
            api.close()


class Http2Acks(HeraldTestCase):
    server_args = ("--http2.max-resets-per-second", "10", "--http2.max-queued-acks", "40")

    def pings(self, n):
        """n PINGs in one write, read back: (ACKs received, GOAWAY code or None)."""
        h2 = H2(self.server.port)
        try:
            h2.until(lambda f: f[0] == h2_raw.SETTINGS and not f[1] & h2_raw.ACK, 5 * SLOW)
            h2.send(b"".join(h2_raw.frame(h2_raw.PING, 0, 0, struct.pack(">Q", i)) for i in range(n)))
            acks, goaway = 0, None
            while acks < n and goaway is None:
                f = h2.until(lambda f: f[0] in (h2_raw.PING, h2_raw.GOAWAY), 3 * SLOW)
                if f is None:
                    break
                if f[0] == h2_raw.GOAWAY:
                    goaway = struct.unpack(">I", f[3][4:8])[0]
                elif f[1] & h2_raw.ACK:
                    acks += 1
            return acks, goaway
        finally:
            h2.close()

    def test_acks_bound_is_its_own_option(self):
        # 30 PINGs at once: more than max_resets_per_second (which bounded them before), within max_queued_acks
        self.assertEqual(self.pings(30), (30, None))
        acks, goaway = self.pings(60)  # more than max_queued_acks owed at once
        self.assertEqual(goaway, h2_raw.ENHANCE_YOUR_CALM)
        self.assertLessEqual(acks, 40)


if __name__ == "__main__":
    unittest.main()
