#!/usr/bin/env python3
"""Client addresses behind proxies (docs/security.md), against the real server
with raw sockets standing in for the load balancer:

  - server.proxy_protocol: PROXY v1 (TCP4, TCP6, UNKNOWN) and v2 (TCP4, TCP6,
    LOCAL, with TLVs) headers give the abuse limits the client's address: with
    limits.connections_per_ip = 2, a third connection claiming 203.0.113.5 is
    answered 503 while one claiming 203.0.113.6 is served; LOCAL / UNKNOWN
    count as the socket's own peer; a header split over several TCP writes
    works; a WebSocket (Python websockets over the same socket) works after
    the header; a missing, malformed or over-long header is closed without a
    byte of answer; a header that does not come within http.header_timeout
    is closed;
  - TLS + PROXY protocol: Python's ssl over a socket that first sent the
    header; the limits see the header's address over TLS too;
  - server.trusted_proxies: from 127.0.0.1 (trusted), X-Forwarded-For (or
    Forwarded: for=) decides the limited address, per request, the
    rightmost untrusted entry counts (a client's forged entries on the left
    do not), and the proxy itself is not capped; from 127.0.0.2 (not trusted)
    X-Forwarded-For is ignored and the peer is limited;
  - bad server.trusted_proxies entries are configuration errors (exit 2).
"""

import asyncio
import ipaddress
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (SLOW, ConnectionClosed, Herald, HeraldTestCase, HttpConn, build_request,  # noqa: E402
                            main, run_herald)

import websockets  # noqa: E402

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
LIMIT = 2
TOO_MANY = "too many connections from your address"


def v1(src, dst=None, sport=41234, dport=443):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("2001:db8::1" if fam == "TCP6" else "192.0.2.1")
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src=None, dst=None, sport=41234, dport=443, command=1, tlvs=b"", fam=None):
    """A version 2 header; src None = no addresses (with command 0 = LOCAL)."""
    if src is None:
        block, famb = b"", 0x00
    else:
        a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst or ("2001:db8::1" if ":" in src else "192.0.2.1"))
        block = a.packed + b.packed + struct.pack("!HH", sport, dport)
        famb = 0x21 if a.version == 6 else 0x11
    if fam is not None:
        famb = fam
    block += tlvs
    return V2_SIG + bytes([0x20 | command, famb]) + struct.pack("!H", len(block)) + block


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


def raw(server, source="127.0.0.1"):
    s = socket.create_connection(server.addr, timeout=5 * SLOW, source_address=(source, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def get(server, header, path="/health", headers=None, source="127.0.0.1"):
    """Send header + one GET; returns (response, open HttpConn)."""
    c = HttpConn(server.addr, sock=raw(server, source))
    c.send(header + build_request("GET", path, headers))
    return c.read_response(), c


def closed_without_answer(conn, timeout=3.0):
    """The server closed the connection (FIN or RST) and sent nothing."""
    try:
        gone = conn.wait_closed(timeout)
    except ConnectionResetError:
        gone = True
    return gone and not conn.buf


class TestProxyProtocol(HeraldTestCase):
    server_args = ("--proxy-protocol", "--limits.connections-per-ip", str(LIMIT), "--http.header-timeout", "1s",
                   "--log-level", "debug")

    def assert_capped(self, make_header, other_header):
        """LIMIT connections with make_header() are served and kept; one more
        gets 503 and is closed; one with other_header is still served."""
        kept = []
        try:
            for _ in range(LIMIT):
                r, c = get(self.server, make_header())
                kept.append(c)
                self.assertEqual(r.status, 200, r.body)
            r, c = get(self.server, make_header())
            self.assertEqual(r.status, 503, r.body)
            self.assertEqual(r.json()["error"], TOO_MANY)
            self.assertEqual(r.header("Retry-After"), "1")
            self.assertTrue(c.wait_closed())
            c.close()
            r, c = get(self.server, other_header)
            c.close()
            self.assertEqual(r.status, 200, r.body)
            # one of them goes: its place is free again (the close reaches the server asynchronously)
            kept.pop().close()
            for _ in range(100):
                r, c = get(self.server, make_header())
                if r.status == 200:
                    kept.append(c)
                    break
                c.close()
                time.sleep(0.02)
            self.assertEqual(r.status, 200)
        finally:
            for c in kept:
                c.close()

    def test_v1_tcp4_address_is_limited(self):
        self.assert_capped(lambda: v1("203.0.113.5"), v1("203.0.113.6"))

    def test_v1_tcp6_address_is_limited(self):
        # IPv6 clients are counted per /64 (limits.ipv6_prefix): another host of the same /64 is the same client
        hosts = iter(range(1, 100))
        self.assert_capped(lambda: v1(f"2001:db8:1:2::{next(hosts)}"), v1("2001:db8:1:3::1"))

    def test_v2_tcp4_address_is_limited(self):
        self.assert_capped(lambda: v2("198.51.100.7"), v2("198.51.100.8"))

    def test_v2_tcp6_with_tlvs_is_limited(self):
        tlvs = tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x04, bytes(300))  # ALPN, authority, NOOP
        self.assert_capped(lambda: v2("2001:db8:5::5", tlvs=tlvs), v2("2001:db8:6::6", tlvs=tlvs))

    def test_local_and_unknown_count_as_the_peer(self):
        # v2 LOCAL (a health check) and v1 UNKNOWN name no client: the socket's peer, 127.0.0.1, counts
        headers = iter([v2(command=0), b"PROXY UNKNOWN\r\n", v2(command=0),
                        b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", v2(command=0), v2(command=0)])
        self.assert_capped(lambda: next(headers), v1("203.0.113.99"))

    def test_missing_header_is_closed(self):
        for first in (build_request("GET", "/health"), b"POST /api/publish HTTP/1.1\r\n\r\n",
                      b"\x16\x03\x01\x00\x05hello"):
            c = HttpConn(self.server.addr, sock=raw(self.server))
            c.send(first)
            self.assertTrue(closed_without_answer(c), first)
            c.close()

    def test_malformed_header_is_closed(self):
        bad = [
            b"PROXY TCP4 203.0.113.5 192.0.2.1 99999 443\r\n",   # port
            b"PROXY TCP4 203.0.113.5  192.0.2.1 1 443\r\n",      # double space
            b"PROXY TCP6 203.0.113.5 192.0.2.1 1 443\r\n",       # IPv4 in TCP6
            b"PROXY TCP4 203.0.113.5 192.0.2.1 1 443\n",         # LF only
            b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n",             # longer than 107 bytes
            V2_SIG + b"\x31\x11\x00\x0c" + bytes(12),             # version 3
            V2_SIG + b"\x23\x11\x00\x0c" + bytes(12),             # command 3
            V2_SIG + b"\x21\x51\x00\x0c" + bytes(12),             # family 5
            V2_SIG + b"\x21\x21\x00\x0c" + bytes(12),             # IPv6 in 12 bytes
        ]
        for header in bad:
            c = HttpConn(self.server.addr, sock=raw(self.server))
            c.send(header + build_request("GET", "/health"))
            self.assertTrue(closed_without_answer(c), header)
            c.close()

    def test_header_timeout(self):
        for partial in (b"", b"PROXY TCP4 203.0.11", V2_SIG[:10], v2("203.0.113.50")[:20]):
            c = HttpConn(self.server.addr, sock=raw(self.server))
            t0 = time.monotonic()
            if partial:
                c.send(partial)
            self.assertTrue(closed_without_answer(c, timeout=4.0), partial)
            took = time.monotonic() - t0
            self.assertGreater(took, 0.8, partial)  # http.header_timeout = 1s
            self.assertLess(took, 3.0 * SLOW, partial)
            c.close()

    def test_header_split_over_several_writes(self):
        # byte by byte (v1), then v2 in three writes with the request in the last one
        s = raw(self.server)
        for b in v1("203.0.113.40"):
            s.send(bytes([b]))
            time.sleep(0.005)
        c = HttpConn(self.server.addr, sock=s)
        c.send(build_request("GET", "/health"))
        r = c.read_response()
        c.close()
        self.assertEqual(r.status, 200)
        h = v2("203.0.113.41", tlvs=tlv(0x04, bytes(40)))
        s = raw(self.server)
        s.sendall(h[:7])
        time.sleep(0.05)
        s.sendall(h[7:30])
        time.sleep(0.05)
        c = HttpConn(self.server.addr, sock=s)
        c.send(h[30:] + build_request("GET", "/health"))
        r = c.read_response()
        c.close()
        self.assertEqual(r.status, 200)
        deadline = time.monotonic() + 3 * SLOW  # the log is read by another thread
        while "PROXY v2: client 203.0.113.41 port 41234" not in self.server.output() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn("PROXY v2: client 203.0.113.41 port 41234", self.server.output())

    def test_pipelined_requests_after_header(self):
        c = HttpConn(self.server.addr, sock=raw(self.server))
        c.send(v1("203.0.113.42") + build_request("GET", "/health") + build_request("GET", "/nope"))
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(c.read_response().status, 404)
        c.close()

    def test_websocket_after_header(self):
        async def scenario():
            s = raw(self.server)
            s.sendall(v2("203.0.113.43"))
            ws = await websockets.connect(self.server.ws_url("/ws/echo"), sock=s, open_timeout=5 * SLOW)
            await ws.send("hello through the proxy")
            got = await asyncio.wait_for(ws.recv(), 5 * SLOW)
            await ws.close()
            return got
        self.assertEqual(asyncio.run(scenario()), "hello through the proxy")

    def test_websocket_counts_for_the_header_address(self):
        async def scenario():
            socks, conns = [], []
            try:
                for _ in range(LIMIT):
                    s = raw(self.server)
                    s.sendall(v1("203.0.113.44"))
                    conns.append(await websockets.connect(self.server.ws_url("/ws/echo"), sock=s,
                                                          open_timeout=5 * SLOW))
                s = raw(self.server)
                socks.append(s)
                s.sendall(v1("203.0.113.44"))
                with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
                    await websockets.connect(self.server.ws_url("/ws/echo"), sock=s, open_timeout=5 * SLOW)
                return cm.exception.status_code
            finally:
                for ws in conns:
                    await ws.close()
                for s in socks:
                    s.close()
        self.assertEqual(asyncio.run(scenario()), 503)


def make_cert(tmp):
    cert, key = os.path.join(tmp, "proxy.crt"), os.path.join(tmp, "proxy.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class TestProxyProtocolTls(HeraldTestCase):
    TMP = tempfile.mkdtemp(prefix="herald-proxy-tls-")
    CERT, KEY = make_cert(TMP)
    server_args = ("--proxy-protocol", "--tls-cert", CERT, "--tls-key", KEY, "--limits.connections-per-ip", "1")

    def tls_get(self, header, path="/health"):
        """The PROXY header in clear, then TLS on the same socket."""
        ctx = ssl.create_default_context(cafile=self.CERT)
        s = raw(self.server)
        s.sendall(header)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        c = HttpConn(self.server.addr, sock=t)
        c.send(build_request("GET", path))
        return c.read_response(), c

    def test_tls_after_header(self):
        kept = []
        try:
            r, c = self.tls_get(v1("203.0.113.70"))
            kept.append(c)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json(), {"status": "ok"})
            self.assertEqual(c.sock.version()[:5], "TLSv1")
            # the limit (1 per address) sees the header's address, over TLS: 503 in TLS
            r, c = self.tls_get(v2("203.0.113.70", tlvs=tlv(0x01, b"http/1.1")))
            kept.append(c)
            self.assertEqual(r.status, 503)
            self.assertEqual(r.json()["error"], TOO_MANY)
            r, c = self.tls_get(v2("203.0.113.71"))
            kept.append(c)
            self.assertEqual(r.status, 200)
        finally:
            for c in kept:
                c.close()

    def test_tls_without_header_is_closed(self):
        ctx = ssl.create_default_context(cafile=self.CERT)
        s = raw(self.server)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                                ssl.SSLEOFError, OSError)):
            ctx.wrap_socket(s, server_hostname="localhost")
        s.close()


class TestTrustedProxies(HeraldTestCase):
    server_args = ("--trusted-proxies", "127.0.0.1,10.0.0.0/8", "--limits.connections-per-ip", str(LIMIT))

    def req(self, c, xff=None, forwarded=None):
        headers = []
        if xff is not None:
            headers.append(("X-Forwarded-For", xff))
        if forwarded is not None:
            headers.append(("Forwarded", forwarded))
        c.send(build_request("GET", "/health", headers))
        return c.read_response()

    def conn(self, source="127.0.0.1"):
        return HttpConn(self.server.addr, sock=raw(self.server, source))

    def test_xff_decides_the_limited_address(self):
        kept = []
        try:
            for _ in range(LIMIT):
                c = self.conn()
                kept.append(c)
                self.assertEqual(self.req(c, "203.0.113.5").status, 200)
            c = self.conn()
            r = self.req(c, "203.0.113.5")
            self.assertEqual(r.status, 503)
            self.assertEqual(r.json()["error"], TOO_MANY)
            self.assertTrue(c.wait_closed())
            c.close()
            # a client forging entries on the left is still 203.0.113.5 (what our proxy appended)
            c = self.conn()
            self.assertEqual(self.req(c, "203.0.113.6, 203.0.113.5").status, 503)
            c.close()
            # trusted hops on the right are skipped
            c = self.conn()
            self.assertEqual(self.req(c, "203.0.113.5, 10.1.2.3").status, 503)
            c.close()
            # another client through the same proxy is served
            c = self.conn()
            kept.append(c)
            self.assertEqual(self.req(c, "203.0.113.5, 203.0.113.6, 10.1.2.3").status, 200)
            # per request: a kept connection now carries another client, which frees a place for .5
            self.assertEqual(self.req(kept[0], "203.0.113.7").status, 200)
            c = self.conn()
            kept.append(c)
            self.assertEqual(self.req(c, "203.0.113.5").status, 200)
            # Forwarded: for= when there is no X-Forwarded-For
            c = self.conn()
            r = self.req(c, forwarded='for=198.51.100.1, for="203.0.113.5:41234";proto=https')
            c.close()
            self.assertEqual(r.status, 503)
        finally:
            for c in kept:
                c.close()

    def test_the_proxy_itself_is_not_capped(self):
        kept = []
        try:
            for i in range(3 * LIMIT):
                c = self.conn()
                kept.append(c)
                self.assertEqual(self.req(c, f"198.51.100.{10 + i}").status, 200)
            # without a header, a request counts for the proxy's own address
            for _ in range(LIMIT):
                c = self.conn()
                kept.append(c)
                self.assertEqual(self.req(c).status, 200)
            c = self.conn()
            self.assertEqual(self.req(c).status, 503)
            c.close()
        finally:
            for c in kept:
                c.close()

    def test_untrusted_peer_xff_is_ignored(self):
        kept = []
        try:
            for i in range(LIMIT):
                c = self.conn("127.0.0.2")
                kept.append(c)
                self.assertEqual(self.req(c, f"198.51.100.{50 + i}").status, 200)
            c = self.conn("127.0.0.2")
            r = self.req(c, "198.51.100.99")  # a fresh address in the header changes nothing
            c.close()
            self.assertEqual(r.status, 503)
            self.assertEqual(r.json()["error"], TOO_MANY)
        finally:
            for c in kept:
                c.close()

    def test_websocket_through_trusted_proxy(self):
        async def scenario():
            conns = []
            try:
                for _ in range(LIMIT):
                    conns.append(await websockets.connect(self.server.ws_url("/ws/echo"),
                                                          extra_headers={"X-Forwarded-For": "203.0.113.80"},
                                                          open_timeout=5 * SLOW))
                with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
                    await websockets.connect(self.server.ws_url("/ws/echo"),
                                             extra_headers={"X-Forwarded-For": "203.0.113.80"},
                                             open_timeout=5 * SLOW)
                other = await websockets.connect(self.server.ws_url("/ws/echo"),
                                                 extra_headers={"X-Forwarded-For": "203.0.113.81"},
                                                 open_timeout=5 * SLOW)
                conns.append(other)
                await other.send("ok")
                self.assertEqual(await asyncio.wait_for(other.recv(), 5 * SLOW), "ok")
                return cm.exception.status_code
            finally:
                for ws in conns:
                    await ws.close()
        self.assertEqual(asyncio.run(scenario()), 503)


class TestConfig(unittest.TestCase):
    def check_file(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(text)
        try:
            return run_herald("check-config", f.name)
        finally:
            os.unlink(f.name)

    def test_bad_trusted_proxies(self):
        for bad in ("10.0.0.0/33", "example.com", "::1/200"):
            r = self.check_file(f'[server]\ntrusted_proxies = ["10.0.0.0/8", "{bad}"]\n')
            self.assertEqual(r.returncode, 2, (bad, r.stdout, r.stderr))
            self.assertIn(f'server.trusted_proxies: "{bad}" is not an IP address or CIDR range'.encode(), r.stderr)
            # the same as a flag: serve refuses to start
            r = run_herald("serve", "--listen", "127.0.0.1:0", "--trusted-proxies", f"10.0.0.0/8,{bad}")
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn(b"server.trusted_proxies", r.stderr + r.stdout)

    def test_good_values(self):
        r = self.check_file('[server]\nproxy_protocol = true\n'
                            'trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:10.0.0.0/104"]\n')
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_proxy_protocol_from_the_environment(self):
        # HERALD_PROXY_PROTOCOL: a plain request without a header is closed unanswered
        with Herald(env={"HERALD_PROXY_PROTOCOL": "true"}) as srv:
            c = HttpConn(srv.addr)
            c.send(build_request("GET", "/health"))
            try:
                gone = c.wait_closed(3.0)
            except ConnectionClosed:
                gone = True
            except ConnectionResetError:
                gone = True
            self.assertTrue(gone)
            self.assertEqual(bytes(c.buf), b"")
            c.close()


if __name__ == "__main__":
    main()
