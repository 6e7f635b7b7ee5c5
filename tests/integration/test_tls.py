"""test_tls - TLS on every Herald listener, with real clients.

Certificates are generated at test time with `openssl req -x509 -newkey ec`
into a temporary directory (no keys in the repository). Clients: curl
(https /health, static files, SSE, long polling, streaming, the API),
Python websockets with an SSL context (wss /ws/echo with permessage-deflate,
native /ws, /ws/raw), Python's ssl module (certificate fingerprints, slow
readers), `openssl s_client` (protocol versions, the server's alert).

Covers: every transport over TLS, plain HTTP on a TLS port (400), TLS 1.1
refused and tls.min_version = 1.3, tls.listen beside a plain listener, the
handshake timeout, bad certificate / key / files at start (exit 2), and the
certificate reload on SIGHUP while a client stays connected.
"""

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase  # noqa: E402
from herald_native import API_KEY, Native, run  # noqa: E402

import websockets  # noqa: E402

TMP = tempfile.mkdtemp(prefix="herald-tls-")


def make_cert(name, cn="localhost"):
    """A self-signed EC certificate for localhost / 127.0.0.1: (cert, key) paths."""
    cert, key = os.path.join(TMP, name + ".crt"), os.path.join(TMP, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def der_fingerprint(cert_path):
    with open(cert_path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


CERT_A, KEY_A = make_cert("a", "herald-a")
CERT_B, KEY_B = make_cert("b", "herald-b")
# Every client trusts both test certificates.
BUNDLE = os.path.join(TMP, "bundle.pem")
with open(BUNDLE, "w") as out:
    for p in (CERT_A, CERT_B):
        with open(p) as f:
            out.write(f.read())
os.environ["SSL_CERT_FILE"] = BUNDLE  # Python's default contexts (websockets.connect) use it

STATIC = os.path.join(TMP, "static")
os.makedirs(STATIC)
BIG = os.urandom(3 * 1024 * 1024 + 12345)
with open(os.path.join(STATIC, "big.bin"), "wb") as f:
    f.write(BIG)
with open(os.path.join(STATIC, "index.html"), "w") as f:
    f.write("<!doctype html><title>herald tls</title><p>hello over tls</p>\n")


def client_ctx(**kw):
    ctx = ssl.create_default_context(cafile=BUNDLE)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def curl(*args, timeout=20):
    """curl over https with the test CA; returns (http status, body bytes)."""
    r = subprocess.run(["curl", "-sS", "--cacert", BUNDLE, "--max-time", str(timeout * SLOW),
                        "-o", "-", "-w", "\n%{http_code}", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * SLOW + 5)
    body, _, code = r.stdout.rpartition(b"\n")
    if r.returncode != 0:
        raise AssertionError(f"curl {args} failed ({r.returncode}): {r.stderr.decode()}")
    return int(code), body


def tls_server(*args, cert=CERT_A, key=KEY_A, **kw):
    return Herald("--tls-cert", cert, "--tls-key", key, "--api-key", API_KEY, "--static", STATIC, *args, **kw)


def wait_log(h, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in h.output():
            return
        time.sleep(0.05)
    raise AssertionError(f"server did not log {text!r} within {timeout}s:\n{h.output(tail=20)}")


class WssServer:
    """What herald_native.Native.open needs: wss:// URLs."""

    def __init__(self, h):
        self.h = h

    def ws_url(self, path):
        return f"wss://localhost:{self.h.port}{path}"


def peer_fingerprint(port, **ctx_kw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ctx(**ctx_kw).wrap_socket(raw, server_hostname="localhost") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(), s.version(), s.selected_alpn_protocol()


class TlsTransports(HeraldTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = tls_server().start()
        cls.base = f"https://localhost:{cls.server.port}"

    def publish(self, channel, data):
        code, body = curl("-X", "POST", "-H", f"Authorization: apikey {API_KEY}",
                          "--data-binary", json.dumps({"channel": channel, "data": data}), self.base + "/api/publish")
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def test_https_health_and_alpn(self):
        code, body = curl(self.base + "/health")
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["status"], "ok")
        h2 = client_ctx()
        h2.set_alpn_protocols(["h2", "http/1.1"])  # h2 first when the client offers it (http2.enabled)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with h2.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.selected_alpn_protocol(), "h2")
        ctx = client_ctx()
        ctx.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
                self.assertEqual(s.version(), "TLSv1.3")
                self.assertEqual(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(), der_fingerprint(CERT_A))
                # keep-alive: two requests on one TLS connection
                for _ in range(2):
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = b""
                    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                        chunk = s.recv(4096)
                        self.assertTrue(chunk, "server closed a keep-alive TLS connection")
                        data += chunk
                    self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)

    def test_tls12_client(self):
        _, version, _ = peer_fingerprint(self.server.port, maximum_version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(version, "TLSv1.2")
        code, _ = curl("--tlsv1.2", "--tls-max", "1.2", self.base + "/health")
        self.assertEqual(code, 200)

    def test_static_files(self):
        code, body = curl(self.base + "/index.html")
        self.assertEqual(code, 200)
        self.assertIn(b"hello over tls", body)
        code, body = curl(self.base + "/big.bin")
        self.assertEqual(code, 200)
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(BIG).hexdigest())

    def test_static_file_to_slow_reader(self):
        """Partial and blocked TLS writes: a reader with a tiny receive buffer that pauses."""
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(30 * SLOW)
        raw.connect(("127.0.0.1", self.server.port))
        s = client_ctx().wrap_socket(raw, server_hostname="localhost")
        try:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            # Publications queued to nobody meanwhile; the server must not mix or drop bytes.
            data = bytearray()
            n = 0
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                n += 1
                if n % 50 == 0:
                    time.sleep(0.02)
            head, _, body = bytes(data).partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
            self.assertEqual(len(body), len(BIG))
            self.assertEqual(body, BIG)
        finally:
            s.close()

    def test_plain_http_to_tls_port(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        body = json.loads(data.partition(b"\r\n\r\n")[2])
        self.assertEqual(body["status"], 400)
        self.assertIn("TLS", body["error"])

    def test_tls11_refused(self):
        def s_client(flag):
            return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.server.port}", flag,
                                   "-cipher", "DEFAULT:@SECLEVEL=0"], input=b"", stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=20).stdout.decode("utf-8", "replace")
        out = s_client("-tls1_1")
        # The server itself refuses: its protocol_version alert (70) reaches the client.
        self.assertIn("alert protocol version", out)
        self.assertIn("Cipher is TLS_", s_client("-tls1_3"))
        self.assertIn("Cipher is ECDHE", s_client("-tls1_2"))

    def test_wss_echo_with_deflate(self):
        async def go():
            async with websockets.connect(f"wss://localhost:{self.server.port}/ws/echo", ssl=client_ctx(),
                                          max_size=None, open_timeout=10 * SLOW) as ws:
                self.assertIn("permessage-deflate", ws.response_headers.get("Sec-WebSocket-Extensions", ""))
                for size in (0, 1, 125, 126, 65536, 1 << 20):
                    text = ("héllo " * (size // 6 + 1))[:size]
                    await ws.send(text)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 20 * SLOW), text)
                blob = os.urandom(300000)
                await ws.send(blob)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 20 * SLOW), blob)
                await ws.close()
                self.assertEqual(ws.close_code, 1000)
        run(go())

    def test_native_ws_receives_api_publications(self):
        async def go():
            c = await Native.open(WssServer(self.server))
            await c.result("subscribe", {"channel": "tls-news"})
            for i in range(50):
                await asyncio.get_running_loop().run_in_executor(None, self.publish, "tls-news", {"n": i})
            pubs = await c.pubs(50, channel="tls-news", timeout=30 * SLOW)
            self.assertEqual([p["data"]["n"] for p in pubs], list(range(50)))
            await c.ws.close()
        run(go())

    def test_ws_raw(self):
        async def go():
            async with websockets.connect(f"wss://localhost:{self.server.port}/ws/raw?channel=tls-raw",
                                          ssl=client_ctx(), open_timeout=10 * SLOW) as ws:
                await asyncio.sleep(0.2)
                await asyncio.get_running_loop().run_in_executor(None, self.publish, "tls-raw", {"hello": "raw"})
                msg = await asyncio.wait_for(ws.recv(), 10 * SLOW)
                self.assertEqual(json.loads(msg), {"hello": "raw"})
        run(go())

    def test_sse(self):
        p = subprocess.Popen(["curl", "-sS", "-N", "--cacert", BUNDLE, "--max-time", str(20 * SLOW),
                              self.base + "/sse?channel=tls-sse"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.5 * SLOW)
            self.publish("tls-sse", {"via": "sse"})
            deadline = time.monotonic() + 10 * SLOW
            seen = []
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                seen.append(line)
                if line.startswith(b"data:") and b"via" in line:
                    self.assertEqual(json.loads(line[5:]), {"via": "sse"})
                    return
            self.fail(f"no SSE event over https; got {seen!r}, stderr {p.stderr.read()!r}")
        finally:
            p.kill()
            p.communicate()

    def test_long_poll(self):
        code, body = curl("-X", "POST", self.base + "/poll/open")
        self.assertEqual(code, 200, body)
        sess = json.loads(body)["session"]
        cmds = json.dumps({"id": 1, "connect": {}}) + "\n" + json.dumps({"id": 2, "subscribe": {"channel": "tls-poll"}})
        code, body = curl("-X", "POST", "--data-binary", cmds, f"{self.base}/poll/send?session={sess}")
        self.assertEqual(code, 202, body)
        cursor, got = 0, []
        deadline = time.monotonic() + 15 * SLOW
        published = False
        while time.monotonic() < deadline:
            if not published and any('"id": 2' in json.dumps(m) or m.get("id") == 2 for m in got):
                published = True
                self.publish("tls-poll", {"via": "poll"})
            code, body = curl(f"{self.base}/poll?session={sess}&cursor={cursor}&timeout=2000")
            self.assertEqual(code, 200, body)
            msg = json.loads(body)
            got += msg["messages"]
            cursor = msg["cursor"]
            pubs = [m for m in got if "pub" in m]
            if pubs:
                self.assertEqual(pubs[0]["pub"]["data"], {"via": "poll"})
                return
        self.fail(f"no publication over https long polling: {got}")

    def test_stream(self):
        p = subprocess.Popen(["curl", "-sS", "-N", "--cacert", BUNDLE, "--max-time", str(20 * SLOW),
                              self.base + "/stream"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = json.loads(p.stdout.readline())
            sess = first.get("session") or first.get("stream", {}).get("session")
            self.assertTrue(sess, first)
            cmds = json.dumps({"id": 1, "connect": {}}) + "\n" + json.dumps(
                {"id": 2, "subscribe": {"channel": "tls-stream"}})
            code, body = curl("-X", "POST", "--data-binary", cmds, f"{self.base}/stream/send?session={sess}")
            self.assertEqual(code, 202, body)
            deadline = time.monotonic() + 10 * SLOW
            while time.monotonic() < deadline:
                line = json.loads(p.stdout.readline())
                if line.get("id") == 2:
                    self.publish("tls-stream", {"via": "stream"})
                if "pub" in line:
                    self.assertEqual(line["pub"]["data"], {"via": "stream"})
                    return
            self.fail("no publication over https streaming")
        finally:
            p.kill()
            p.communicate()


class TlsListeners(HeraldTestCase):
    def test_tls_listen_beside_plain(self):
        with tls_server("--tls-listen", "127.0.0.1:0") as h:
            m = [ln for ln in h.output().splitlines() if "listening on" in ln][0]
            tls_port = int(m.split("https://")[1].split()[0].rsplit(":", 1)[1])
            self.assertNotEqual(tls_port, h.port)
            code, body = curl(f"https://localhost:{tls_port}/health")
            self.assertEqual(code, 200)
            r = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{h.port}/health"], stdout=subprocess.PIPE,
                               timeout=20)
            self.assertEqual(json.loads(r.stdout)["status"], "ok")
        self.assertEqual(h.returncode, 0)

    def test_metrics_label_tls_connections(self):
        """herald_connections_by_transport{tls="true"} counts the connections
        of the TLS listener (docs/operations.md)."""
        with tls_server("--tls-listen", "127.0.0.1:0") as h:
            m = [ln for ln in h.output().splitlines() if "listening on" in ln][0]
            tls_port = int(m.split("https://")[1].split()[0].rsplit(":", 1)[1])
            raw = socket.create_connection(("127.0.0.1", tls_port), timeout=10 * SLOW)
            with client_ctx().wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                self.assertIn(b"200", s.recv(4096))  # kept alive: an HTTP connection over TLS
                with urllib.request.urlopen(f"http://127.0.0.1:{h.port}/metrics", timeout=10 * SLOW) as r:
                    text = r.read().decode()
                self.assertIn('herald_connections_by_transport{transport="http",tls="true"} 1\n', text)
                self.assertIn('herald_connections_by_transport_total{transport="http",tls="true"} 1\n', text)

    def test_min_version_13(self):
        with tls_server("--tls.min-version", "1.3") as h:
            with self.assertRaises(ssl.SSLError):
                peer_fingerprint(h.port, maximum_version=ssl.TLSVersion.TLSv1_2)
            self.assertEqual(peer_fingerprint(h.port)[1], "TLSv1.3")

    def test_ciphersuites(self):
        with tls_server("--tls.ciphersuites", "TLS_CHACHA20_POLY1305_SHA256") as h:
            with socket.create_connection(("127.0.0.1", h.port), timeout=10) as raw:
                with client_ctx().wrap_socket(raw, server_hostname="localhost") as s:
                    self.assertEqual(s.cipher()[0], "TLS_CHACHA20_POLY1305_SHA256")

    def test_handshake_timeout(self):
        with tls_server("--http.header-timeout", "500ms") as h:
            for payload in (b"", b"\x16\x03\x01\x02\x00\x01"):  # nothing; half a ClientHello
                with socket.create_connection(("127.0.0.1", h.port), timeout=10 * SLOW) as s:
                    if payload:
                        s.sendall(payload)
                    t0 = time.monotonic()
                    self.assertEqual(s.recv(100), b"")
                    self.assertLess(time.monotonic() - t0, 5 * SLOW)
        self.assertEqual(h.returncode, 0)

    def test_bad_tls_config_exits_2(self):
        junk = os.path.join(TMP, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        cases = [
            (["--tls-cert", CERT_A, "--tls-key", KEY_B], "does not match"),
            (["--tls-cert", junk, "--tls-key", KEY_A], "tls.cert"),
            (["--tls-cert", CERT_A, "--tls-key", junk], "tls.key"),
            (["--tls-cert", os.path.join(TMP, "missing.crt"), "--tls-key", KEY_A], "cannot open"),
            (["--tls-cert", CERT_A], "tls.key"),
            (["--tls-listen", "127.0.0.1:0"], "tls.listen"),
            (["--tls-cert", CERT_A, "--tls-key", KEY_A, "--tls.min-version", "1.1"], "tls.min_version"),
            (["--tls-cert", CERT_A, "--tls-key", KEY_A, "--tls.ciphers", "NOPE-NOPE"], "tls.ciphers"),
        ]
        for args, needle in cases:
            h = Herald(*args)
            try:
                with self.assertRaises(Exception):
                    h.start()
                self.assertEqual(h.proc.wait(10), 2, args)
                self.assertIn(needle, h.output(), args)
            finally:
                h.kill()


class TlsReload(HeraldTestCase):
    def test_reload_on_sighup(self):
        cert, key = os.path.join(TMP, "live.crt"), os.path.join(TMP, "live.key")
        shutil.copy(CERT_A, cert)
        shutil.copy(KEY_A, key)
        with tls_server(cert=cert, key=key) as h:
            self.assertEqual(peer_fingerprint(h.port)[0], der_fingerprint(CERT_A))
            base = f"https://localhost:{h.port}"

            def publish(data):
                code, body = curl("-X", "POST", "-H", f"Authorization: apikey {API_KEY}", "--data-binary",
                                  json.dumps({"channel": "reload", "data": data}), base + "/api/publish")
                self.assertEqual(code, 200, body)

            async def go():
                c = await Native.open(WssServer(h))
                old_fp = hashlib.sha256(c.ws.transport.get_extra_info("ssl_object").getpeercert(True)).hexdigest()
                self.assertEqual(old_fp, der_fingerprint(CERT_A))
                await c.result("subscribe", {"channel": "reload"})
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, publish, 1)
                self.assertEqual((await c.pubs(1, channel="reload"))[0]["data"], 1)

                # New files, SIGHUP: new connections get B, the open one stays and keeps receiving.
                shutil.copy(CERT_B, cert)
                shutil.copy(KEY_B, key)
                h.signal(signal.SIGHUP)
                await loop.run_in_executor(None, wait_log, h, "TLS certificate reloaded", 10 * SLOW)
                self.assertEqual(peer_fingerprint(h.port)[0], der_fingerprint(CERT_B))
                for i in range(2, 12):
                    await loop.run_in_executor(None, publish, i)
                self.assertEqual([p["data"] for p in await c.pubs(10, channel="reload")], list(range(2, 12)))
                # the old connection still works both ways
                await c.result("unsubscribe", {"channel": "reload"})

                # A broken certificate: logged, the previous one stays in use.
                with open(cert, "w") as f:
                    f.write("garbage\n")
                h.signal(signal.SIGHUP)
                await loop.run_in_executor(None, wait_log, h, "NOT reloaded", 10 * SLOW)
                self.assertEqual(peer_fingerprint(h.port)[0], der_fingerprint(CERT_B))
                self.assertFalse(c.ws.closed)
                await c.ws.close()
            run(go())
            self.assertTrue(h.alive())
        self.assertEqual(h.returncode, 0, "herald did not exit cleanly (sanitizer report?)")


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
