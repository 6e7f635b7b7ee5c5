#!/usr/bin/env python3
"""HTTP/1.1 behaviour of the real herald binary, spoken over raw sockets.

Covers: /health (GET, HEAD, 405 with Allow), 404 and JSON errors, the
/http/echo endpoint (Content-Length, chunked with extensions and trailers,
Expect: 100-continue, 413), keep-alive rules for HTTP/1.0 and 1.1,
pipelining, Connection: close, every malformed-request status (400, 414,
431, 501, 505), header / keep-alive timeouts (slowloris), static files, and
an in-flight request surviving SIGTERM.
"""

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, build_request, dump_output, main  # noqa: E402

KiB = 1024
MiB = 1024 * 1024


class HttpAssertions:
    def assertJsonError(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        ctype = resp.header("Content-Type", "")
        self.assertTrue(ctype.lower().startswith("application/json"), f"error Content-Type {ctype!r}: {resp!r}")
        try:
            doc = json.loads(resp.body.decode("utf-8"))
        except ValueError as e:
            self.fail(f"error body is not JSON ({e}): {resp.body!r}")
        self.assertIsInstance(doc, dict, resp.body)
        self.assertEqual(doc.get("status"), status, resp.body)
        self.assertIsInstance(doc.get("error"), str, resp.body)
        self.assertTrue(doc["error"], resp.body)

    def assertContentLength(self, resp):
        cl = resp.header("Content-Length")
        if cl is not None:
            self.assertEqual(int(cl), len(resp.body), resp)

    def bad_request(self, raw, status, read_timeout=5.0):
        """Send raw bytes on a fresh connection, expect a JSON error `status`,
        Connection: close, and the server closing the connection."""
        with self.server.http() as c:
            c.send(raw)
            resp = c.read_response("GET", timeout=read_timeout)
            self.assertJsonError(resp, status)
            self.assertTrue(resp.has_token("Connection", "close"),
                            f"error {status} without 'Connection: close': {resp!r}")
            self.assertTrue(c.wait_closed(3.0), f"server kept the connection open after {status}")
            return resp


class TestHealthAndErrors(HttpAssertions, HeraldTestCase):

    def test_health_get(self):
        with self.server.http() as c:
            r = c.request("GET", "/health")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type", "").startswith("application/json"), r)
        self.assertEqual(r.json().get("status"), "ok", r)
        self.assertContentLength(r)
        self.assertEqual(r.version, "HTTP/1.1")

    def test_answer_heads_line_by_line(self):
        """Status line, then Server, Date (IMF-fixdate), Content-Length,
        Content-Type, Connection when needed, the answer's own lines - in
        that order, nothing else."""
        date = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT"
        cases = [
            (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK",
             ["Content-Type: application/json", "Cache-Control: no-store"]),
            (b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "HTTP/1.1 200 OK",
             ["Content-Type: application/json", "Connection: keep-alive", "Cache-Control: no-store"]),
            (b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 401 Unauthorized",
             ["Content-Type: application/json", "WWW-Authenticate: apikey"]),
            (b"GET /api/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 Method Not Allowed",
             ["Content-Type: application/json", "Connection: close", "Allow: POST"]),
        ]
        for raw, status, rest in cases:
            with self.subTest(raw=raw), self.server.http() as c:
                c.send(raw)
                r = c.read_response()
                lines = r.raw_head.decode().split("\r\n")
                self.assertEqual(lines[0], status, r.raw_head)
                self.assertRegex(lines[1], r"^Server: herald/\S+$")
                self.assertRegex(lines[2], "^Date: " + date + "$")
                self.assertEqual(lines[3], f"Content-Length: {len(r.body)}")
                self.assertEqual([x for x in lines[4:] if x], rest, r.raw_head)

    def test_health_head_has_no_body(self):
        with self.server.http() as c:
            g = c.request("GET", "/health")
            h = c.request("HEAD", "/health")
            self.assertEqual(h.status, 200, h)
            self.assertEqual(h.body, b"")
            if h.header("Content-Length") is not None:
                self.assertEqual(int(h.header("Content-Length")), len(g.body), h)
            # If HEAD had leaked a body, it would be parsed as the next status line.
            g2 = c.request("GET", "/health")
            self.assertEqual(g2.status, 200, g2)
            self.assertEqual(g2.body, g.body)

    def test_health_post_405_with_allow(self):
        with self.server.http() as c:
            r = c.request("POST", "/health", body=b"x")
        self.assertJsonError(r, 405)
        allow = r.header("Allow")
        self.assertIsNotNone(allow, f"405 without Allow header: {r!r}")
        toks = {t.strip().upper() for t in allow.split(",")}
        self.assertIn("GET", toks, allow)
        self.assertIn("HEAD", toks, allow)
        self.assertNotIn("POST", toks, allow)

    def test_unknown_path_404_json(self):
        for path in ("/no/such/thing", "/healthz", "/health/extra", "/%41bc"):
            with self.subTest(path=path), self.server.http() as c:
                r = c.request("GET", path)
                self.assertJsonError(r, 404)
                self.assertContentLength(r)
                # A 404 is not a connection error: keep-alive goes on.
                r2 = c.request("GET", "/health")
                self.assertEqual(r2.status, 200, r2)

    def test_health_with_query_string(self):
        with self.server.http() as c:
            r = c.request("GET", "/health?verbose=1")
        self.assertEqual(r.status, 200, r)

    # -- malformed requests -----------------------------------------------------

    def test_malformed_request_line_400(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /health\r\nHost: x\r\n\r\n",
            b"GET /health HTTX/1.1\r\nHost: x\r\n\r\n",
            b"GET /health HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            b"G(T /health HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET health HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for raw in cases:
            with self.subTest(raw=raw):
                self.bad_request(raw, 400)

    def test_bad_header_lines_400(self):
        cases = [
            # obs-fold (RFC 7230 3.2.4: reject with 400)
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
            # whitespace between name and colon (RFC 7230 3.2.4: MUST 400)
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad : v\r\n\r\n",
            # no colon
            b"GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
            # empty header name
            b"GET /health HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
        ]
        for raw in cases:
            with self.subTest(raw=raw):
                self.bad_request(raw, 400)

    def test_missing_host_http11_400(self):
        self.bad_request(b"GET /health HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400)

    def test_http10_without_host_ok(self):
        with self.server.http() as c:
            c.send(b"GET /health HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertTrue(c.wait_closed(2.0), "HTTP/1.0 without keep-alive must be closed")

    def test_content_length_and_transfer_encoding_400(self):
        raw = (b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        self.bad_request(raw, 400)

    def test_bad_content_length_400(self):
        cases = [
            b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ]
        for raw in cases:
            with self.subTest(raw=raw):
                self.bad_request(raw, 400)

    def test_transfer_encoding_gzip_501(self):
        raw = b"POST /http/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
        self.bad_request(raw, 501)

    def test_http2_version_505(self):
        self.bad_request(b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505)

    def test_head_too_large_431(self):
        raw = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 * KiB) + b"\r\n\r\n"
        self.bad_request(raw, 431)

    def test_head_too_large_without_end_431(self):
        # The server must not wait for the end of an oversized head.
        with self.server.http() as c:
            c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 * KiB))
            r = c.read_response(timeout=5)
            self.assertJsonError(r, 431)
            self.assertTrue(c.wait_closed(3.0))

    def test_just_under_head_limit_ok(self):
        raw = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (12 * KiB) + b"\r\n\r\n"
        with self.server.http() as c:
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)

    def test_too_many_headers_431(self):
        # Host + 64 others = 65 > 64
        hdrs = "".join(f"X-H{i}: v\r\n" for i in range(64))
        raw = ("GET /health HTTP/1.1\r\nHost: x\r\n" + hdrs + "\r\n").encode()
        self.bad_request(raw, 431)

    def test_max_headers_exactly_ok(self):
        # Host + 63 others = 64 = the limit
        hdrs = "".join(f"X-H{i}: v\r\n" for i in range(63))
        raw = ("GET /health HTTP/1.1\r\nHost: x\r\n" + hdrs + "\r\n").encode()
        with self.server.http() as c:
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)

    def test_target_too_long_414(self):
        raw = b"GET /" + b"a" * (9 * KiB) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        self.bad_request(raw, 414)

    def test_error_connection_does_not_affect_others(self):
        with self.server.http() as good:
            self.assertEqual(good.request("GET", "/health").status, 200)
            self.bad_request(b"\x00\x01\x02garbage\r\n\r\n", 400)
            self.assertEqual(good.request("GET", "/health").status, 200)


class TestEcho(HttpAssertions, HeraldTestCase):

    def test_post_echo(self):
        with self.server.http() as c:
            r = c.request("POST", "/http/echo", {"Content-Type": "text/plain; charset=utf-8"}, b"hello herald")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hello herald")
        # never the client's type: the echo must not serve a page from this origin
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        self.assertContentLength(r)

    def test_put_echo_binary(self):
        body = bytes(range(256)) * 64
        with self.server.http() as c:
            r = c.request("PUT", "/http/echo", {"Content-Type": "application/octet-stream"}, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, body)
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")

    def test_echo_empty_body(self):
        with self.server.http() as c:
            r = c.request("POST", "/http/echo", {"Content-Type": "text/plain"}, b"")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"")
            r = c.request("GET", "/health")
            self.assertEqual(r.status, 200, r)

    def test_echo_get_405(self):
        with self.server.http() as c:
            r = c.request("GET", "/http/echo")
        self.assertJsonError(r, 405)
        self.assertIsNotNone(r.header("Allow"), r)
        self.assertIn("POST", r.header("Allow").upper())

    def test_echo_max_body_exactly(self):
        body = os.urandom(1 * MiB)
        with self.server.http(timeout=20) as c:
            r = c.request("POST", "/http/echo", {"Content-Type": "application/octet-stream"}, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), len(body))
        self.assertEqual(r.body, body)

    def test_echo_body_too_large_413(self):
        n = 1 * MiB + 1
        with self.server.http(timeout=20) as c:
            c.send(b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: %d\r\n\r\n" % n)
            try:
                r = c.read_response(timeout=2)  # a server may answer from Content-Length alone
            except (socket.timeout, TimeoutError):
                try:
                    c.send(b"x" * n)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                r = c.read_response()
            self.assertJsonError(r, 413)

    def test_echo_chunked_too_large_413(self):
        with self.server.http(timeout=20) as c:
            c.send(b"POST /http/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"y" * (256 * KiB)
            try:
                for _ in range(5):  # 1.25 MiB total
                    c.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                c.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may stop reading once it has decided
            r = c.read_response()
            self.assertJsonError(r, 413)

    def test_echo_chunked_with_extensions_and_trailers(self):
        raw = (b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"5;name=value\r\nhello\r\n"
               b"1;flag\r\n \r\n"
               b"A\r\n0123456789\r\n"
               b"a;q=\"quoted;ext\"\r\nabcdefghij\r\n"
               b"0;last=1\r\nX-Trailer: t1\r\nX-Other: t2\r\n\r\n")
        with self.server.http() as c:
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"hello 0123456789abcdefghij")
            self.assertEqual(r.header("Content-Type"), "application/octet-stream")
            # connection is still usable
            r2 = c.request("GET", "/health")
            self.assertEqual(r2.status, 200, r2)

    def test_echo_chunked_split_across_writes(self):
        parts = [b"POST /http/echo HTTP/1.1\r\nHost: x\r\nTransfer-", b"Encoding: chunked\r\n\r\n3",
                 b"\r\nab", b"c\r", b"\n0", b"\r\n", b"\r\n"]
        with self.server.http() as c:
            for p in parts:
                c.send(p)
                time.sleep(0.02)
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"abc")

    def test_echo_body_with_its_head_or_apart(self):
        """A Content-Length body in the head's write (answered from the read
        bytes), split from it, or split inside, with the next request right
        behind it: the same echo, in order."""
        head = b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n"
        for parts in ([head + b"abcdef" + head + b"ghijkl"], [head, b"abcdef" + head + b"ghijkl"],
                      [head + b"abc", b"def" + head + b"gh", b"ijkl"]):
            with self.subTest(parts=parts), self.server.http() as c:
                for p in parts:
                    c.send(p)
                    time.sleep(0.02)
                r1, r2 = c.read_response(), c.read_response()
                self.assertEqual((r1.status, r1.body, r2.status, r2.body), (200, b"abcdef", 200, b"ghijkl"))

    def test_expect_100_continue_with_the_body_in_the_same_write(self):
        with self.server.http() as c:
            c.send(b"POST /http/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody")
            interim = c.read_response(timeout=3, skip_interim=False)
            self.assertEqual(interim.status, 100, interim)
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"body"))

    def test_echo_chunked_bad_size_400(self):
        raw = (b"POST /http/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"zz\r\nhello\r\n0\r\n\r\n")
        self.bad_request(raw, 400)

    def test_expect_100_continue(self):
        body = b"continued body"
        with self.server.http() as c:
            c.send(b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                   b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            interim = c.read_response(timeout=3, skip_interim=False)
            self.assertEqual(interim.status, 100, interim)
            self.assertTrue(interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"), interim.raw_head)
            c.send(body)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, body)

    def test_expect_100_continue_too_large_413(self):
        with self.server.http() as c:
            c.send(b"POST /http/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                   b"Content-Length: %d\r\n\r\n" % (2 * MiB))
            r = c.read_response(timeout=3)  # skips an (unneeded) 100 if one is sent
            self.assertJsonError(r, 413)

    # -- keep-alive / pipelining ---------------------------------------------

    def test_keepalive_http11_default(self):
        with self.server.http() as c:
            for i in range(5):
                r = c.request("POST", "/http/echo", {"Content-Type": "text/plain"}, f"msg {i}".encode())
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, f"msg {i}".encode())
                self.assertFalse(r.has_token("Connection", "close"), r)
            self.assertTrue(c.is_open(0.3))

    def test_http10_closes_by_default(self):
        with self.server.http() as c:
            c.send(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertTrue(c.wait_closed(2.0), "HTTP/1.0 request without keep-alive: connection not closed")

    def test_http10_keepalive(self):
        with self.server.http() as c:
            c.send(b"GET /health HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.has_token("Connection", "keep-alive"), f"HTTP/1.0 keep-alive not confirmed: {r!r}")
            self.assertTrue(c.is_open(0.3), "HTTP/1.0 keep-alive connection closed")
            c.send(b"GET /health HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)

    def test_connection_close_honoured(self):
        with self.server.http() as c:
            r = c.request("GET", "/health", {"Connection": "close"})
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.has_token("Connection", "close"), r)
            self.assertTrue(c.wait_closed(2.0), "Connection: close not honoured")

    def test_pipelining_10_requests_in_one_write(self):
        reqs = []
        expect = []
        for i in range(10):
            if i % 3 == 0:
                reqs.append(build_request("GET", "/health"))
                expect.append((200, None))
            elif i % 3 == 1:
                body = f"pipelined body #{i} ".encode() * (i + 1)
                reqs.append(build_request("POST", "/http/echo", {"Content-Type": "text/plain"}, body))
                expect.append((200, body))
            else:
                reqs.append(build_request("GET", f"/missing/{i}"))
                expect.append((404, None))
        with self.server.http() as c:
            c.send(b"".join(reqs))
            for i, (status, body) in enumerate(expect):
                r = c.read_response()
                self.assertEqual(r.status, status, f"response #{i}: {r!r}")
                if body is not None:
                    self.assertEqual(r.body, body, f"response #{i}")
            self.assertEqual(bytes(c.buf), b"", "extra bytes after 10 responses")
            self.assertTrue(c.is_open(0.2))

    def test_pipelining_with_close_last(self):
        reqs = [build_request("GET", "/health") for _ in range(3)]
        reqs.append(build_request("GET", "/health", {"Connection": "close"}))
        reqs.append(build_request("GET", "/health"))  # after close: must not be answered
        with self.server.http() as c:
            c.send(b"".join(reqs))
            for i in range(4):
                r = c.read_response()
                self.assertEqual(r.status, 200, f"#{i} {r!r}")
            self.assertTrue(c.wait_closed(2.0))
            self.assertEqual(bytes(c.buf), b"", "server answered a request sent after Connection: close")

    def test_pipelined_echo_byte_by_byte(self):
        raw = build_request("POST", "/http/echo", {"Content-Type": "text/plain"}, b"abc") * 2
        with self.server.http() as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for b in raw:
                c.send(bytes([b]))
            for _ in range(2):
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"abc")


class TestTimeouts(HttpAssertions, HeraldTestCase):
    server_args = ("--http.header-timeout", "1s", "--http.keepalive-timeout", "1s")

    def test_slowloris_gets_408(self):
        with self.server.http(timeout=6) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.monotonic()
            c.send(b"GET /health HTTP/1.1\r\nHo")
            got = b""
            closed = False
            # trickle one header byte every 200 ms for up to 5 s
            trickle = b"st: x\r\nX-Slow: " + b"a" * 100
            for b in trickle:
                try:
                    c.send(bytes([b]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                c.sock.settimeout(0.2)
                try:
                    chunk = c.sock.recv(65536)
                except (socket.timeout, TimeoutError):
                    continue
                except ConnectionResetError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                got += chunk
                if b"\r\n\r\n" in got:
                    break
                if time.monotonic() - t0 > 5 * SLOW:
                    break
            elapsed = time.monotonic() - t0
            if not closed:
                c.buf += got
                r = c.read_response(timeout=3)
                self.assertJsonError(r, 408)
                self.assertTrue(c.wait_closed(2.0), "408 but the connection stayed open")
            else:
                self.assertTrue(got.startswith(b"HTTP/1.1 408"), f"closed without a 408: {got!r}")
            self.assertLess(elapsed, 2.5 * SLOW, f"slowloris connection lived {elapsed:.2f}s with a 1s header timeout")
            self.assertGreater(elapsed, 0.8, f"408 after {elapsed:.2f}s, before the 1s header timeout")

    def test_silent_connection_closed(self):
        with self.server.http() as c:
            t0 = time.monotonic()
            closed = c.wait_closed(4.0)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, "a connection that never sent a byte stayed open > 4s (timeouts 1s)")
            self.assertLess(elapsed, 3.0 * SLOW)
            if c.buf:
                self.assertTrue(bytes(c.buf).startswith(b"HTTP/1.1 408"), bytes(c.buf))

    def test_idle_keepalive_closed(self):
        with self.server.http() as c:
            r = c.request("GET", "/health")
            self.assertEqual(r.status, 200, r)
            t0 = time.monotonic()
            closed = c.wait_closed(4.0)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, "idle keep-alive connection not closed within 4s (keepalive_timeout 1s)")
            self.assertGreater(elapsed, 0.7, f"closed after {elapsed:.2f}s, before the 1s keep-alive timeout")
            self.assertLess(elapsed, 2.5 * SLOW)
            self.assertEqual(bytes(c.buf), b"", "an idle keep-alive close must not send a response")

    def test_active_keepalive_survives(self):
        # Requests every 0.4 s for 2.4 s: each one restarts the keep-alive timer.
        with self.server.http() as c:
            for _ in range(6):
                r = c.request("GET", "/health")
                self.assertEqual(r.status, 200, r)
                time.sleep(0.4)
            r = c.request("GET", "/health")
            self.assertEqual(r.status, 200, r)


class TestStatic(HttpAssertions, HeraldTestCase):
    FILES = {
        "index.html": b"<!doctype html><title>herald</title><p>index</p>\n",
        "app.js": b"console.log('herald');\n",
        "style.css": b"body { color: black; }\n",
        "data.json": b'{"k": [1, 2, 3]}\n',
        "img.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>\n',
        "blob.xyz": os.urandom(3000),
        "big.bin": os.urandom(300 * 1024),
        ".secret": b"dotfile secret\n",
        "sub/index.html": b"<p>sub index</p>\n",
        "sub/page.html": b"<p>sub page</p>\n",
        ".hidden/file.txt": b"in a hidden dir\n",
    }
    TYPES = {
        "index.html": "text/html; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "data.json": "application/json",
        "img.png": "image/png",
        "icon.svg": "image/svg+xml",
        "blob.xyz": "application/octet-stream",
    }

    @classmethod
    def make_server(cls):
        cls.tmp = tempfile.mkdtemp(prefix="herald-static-")
        cls.root = os.path.join(cls.tmp, "www")
        for name, data in cls.FILES.items():
            p = os.path.join(cls.root, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        with open(os.path.join(cls.tmp, "outside.txt"), "wb") as f:
            f.write(b"outside the root\n")
        return Herald("--static", cls.root, workers=2)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def get(self, path, method="GET", headers=None):
        with self.server.http() as c:
            c.send(build_request(method, path, headers))
            return c.read_response(method)

    def test_content_types(self):
        for name, ctype in self.TYPES.items():
            with self.subTest(name=name):
                r = self.get("/" + name)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, self.FILES[name])
                self.assertEqual(r.header("Content-Type", "").replace(" ", "").lower(),
                                 ctype.replace(" ", "").lower(), r)
                self.assertContentLength(r)

    def test_css_type(self):
        r = self.get("/style.css")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type", "").startswith("text/css"), r)
        self.assertEqual(r.body, self.FILES["style.css"])

    def test_root_serves_index(self):
        r = self.get("/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, self.FILES["index.html"])
        self.assertTrue(r.header("Content-Type", "").startswith("text/html"), r)

    def test_directory_redirect(self):
        r = self.get("/sub")
        self.assertEqual(r.status, 301, r)
        loc = r.header("Location")
        self.assertIsNotNone(loc, r)
        self.assertTrue(loc == "/sub/" or loc.endswith("://127.0.0.1:%d/sub/" % self.server.port), loc)
        r = self.get("/sub/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, self.FILES["sub/index.html"])
        r = self.get("/sub/page.html")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, self.FILES["sub/page.html"])

    def test_query_string_ignored(self):
        r = self.get("/app.js?v=123")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, self.FILES["app.js"])

    def test_large_file(self):
        r = self.get("/big.bin")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, self.FILES["big.bin"])

    def test_traversal_and_dotfiles_404(self):
        for path in ("/../outside.txt", "/sub/../../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E/outside.txt",
                     "/sub/%2e%2e/%2e%2e/outside.txt", "/..%2foutside.txt", "/%2e%2e%2foutside.txt",
                     "/.secret", "/.hidden/file.txt", "/sub/../.secret", "/%2esecret", "/no-such-file.html",
                     "/index.html%00.js"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertIn(r.status, (404, 400), r)
                self.assertNotIn(b"outside the root", r.body)
                self.assertNotIn(b"secret", r.body)
                self.assertNotIn(b"hidden dir", r.body)
                self.assertJsonError(r, r.status)
        # the plain cases are 404 exactly
        for path in ("/../outside.txt", "/%2e%2e/outside.txt", "/.secret", "/no-such-file.html"):
            with self.subTest(path=path, exact=404):
                self.assertEqual(self.get(path).status, 404)

    def test_head_static(self):
        with self.server.http() as c:
            c.send(build_request("HEAD", "/app.js"))
            r = c.read_response("HEAD")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("Content-Length"), str(len(self.FILES["app.js"])), r)
            self.assertTrue(r.header("Content-Type", "").startswith("text/javascript"), r)
            r2 = c.request("GET", "/data.json")  # a leaked HEAD body would break this parse
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual(r2.body, self.FILES["data.json"])

    def test_post_static_405(self):
        with self.server.http() as c:
            r = c.request("POST", "/index.html", body=b"x")
        self.assertJsonError(r, 405)
        self.assertIsNotNone(r.header("Allow"), r)

    def test_health_still_served(self):
        r = self.get("/health")
        self.assertEqual(r.status, 200, r)


class TestInFlightDuringShutdown(HttpAssertions, unittest.TestCase):
    """SIGTERM while a request body is still arriving: the response completes,
    new connections are refused, and the server exits 0."""

    def test_inflight_request_completes(self):
        srv = Herald("--drain-timeout", "5s", workers=2)
        srv.start()
        try:
            body = b"z" * 200000
            with srv.http(timeout=10) as c:
                c.send(b"POST /http/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body))
                c.send(body[:1000])
                time.sleep(0.2)
                srv.signal(signal.SIGTERM)
                time.sleep(0.3)
                self.assertTrue(srv.alive(), "server exited while a request was in flight")
                # a new connection is refused (listener closed), while the old one goes on; the
                # workers close their listeners as they see the drain (a loaded machine may take
                # a while): tried until refused, for 5 s (x SLOW)
                refused, deadline = False, time.monotonic() + 5 * SLOW
                while not refused and time.monotonic() < deadline:
                    try:
                        s = socket.create_connection(srv.addr, timeout=1)
                        # accepted by the kernel backlog?  then it must be closed without service
                        s.sendall(build_request("GET", "/health"))
                        s.settimeout(2)
                        data = s.recv(100)
                        refused = data == b""
                        s.close()
                    except (ConnectionRefusedError, ConnectionResetError):
                        refused = True
                    if not refused:
                        time.sleep(0.1)
                self.assertTrue(refused, "new connections were still served 5 s after SIGTERM")
                c.send(body[1000:])
                r = c.read_response(timeout=5)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, body)
            rc = srv.wait(10 * SLOW)
            self.assertEqual(rc, 0, f"exit code after SIGTERM: {rc}")
        except BaseException:
            dump_output(srv, "server output (in-flight shutdown test)")
            raise
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
