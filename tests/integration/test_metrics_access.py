#!/usr/bin/env python3
"""Who may read GET /metrics (docs/operations.md, "Metrics access") on the
real herald binary: metrics.allowed_ips matched against the socket's own
peer (403 JSON for another address, even one a trusted proxy's
X-Forwarded-For names), metrics.token (401 JSON without the Bearer token or
with a wrong one), metrics.listen (a second address serving only /metrics,
/health and /ready: 404 JSON for the rest), and start-up errors for a bad
address list.
"""

import os
import socket
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HttpConn, main, run_herald  # noqa: E402


def get(addr, path="/metrics", headers=None, source=None):
    sock = None
    if source:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(5 * SLOW)
        sock.bind((source, 0))
        sock.connect(addr)
    with HttpConn(addr, sock=sock) as c:
        return c.request("GET", path, headers)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AllowedIpsTest(unittest.TestCase):
    def test_peer_outside_the_list_gets_403_json(self):
        with Herald("--metrics.allowed_ips", "127.0.0.2/32,10.0.0.0/8", "--server.trusted_proxies", "127.0.0.1",
                    workers=1) as srv:
            r = get(srv.addr)
            self.assertEqual(r.status, 403)
            self.assertEqual(r.json()["status"], 403)
            self.assertIn("metrics.allowed_ips", r.json()["error"])
            # a forwarded address is not the peer's, even from a trusted proxy
            r = get(srv.addr, headers={"X-Forwarded-For": "10.1.2.3"})
            self.assertEqual(r.status, 403)
            # the peer 127.0.0.2 is in the list
            r = get(srv.addr, source="127.0.0.2")
            self.assertEqual(r.status, 200)
            self.assertIn(b"herald_workers 1\n", r.body)

    def test_default_is_loopback(self):
        with Herald(workers=1) as srv:
            self.assertEqual(get(srv.addr).status, 200)
            self.assertEqual(get(srv.addr, source="127.0.0.3").status, 200)

    def test_bad_entry_is_a_start_up_error(self):
        r = run_herald("serve", "--listen", "127.0.0.1:0", "--metrics.allowed_ips", "10.0.0.0/33")
        self.assertEqual(r.returncode, 2, (r.stdout + r.stderr).decode())
        self.assertIn("metrics.allowed_ips", (r.stdout + r.stderr).decode())


class TokenTest(unittest.TestCase):
    def test_bearer_token_required(self):
        with Herald("--metrics.token", "s3cret-token", workers=1) as srv:
            for headers in (None, {"Authorization": "Bearer wrong-token!"}, {"Authorization": "Bearer s3cret"},
                            {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
                r = get(srv.addr, headers=headers)
                self.assertEqual(r.status, 401, headers)
                self.assertEqual(r.json(), {"error": r.json()["error"], "status": 401})
                self.assertIn("Bearer", r.header("WWW-Authenticate"))
            r = get(srv.addr, headers={"Authorization": "Bearer s3cret-token"})
            self.assertEqual(r.status, 200)
            self.assertIn(b"# TYPE herald_connections gauge", r.body)
            r = get(srv.addr, headers={"Authorization": "bearer s3cret-token"})
            self.assertEqual(r.status, 200)
            # the token guards /metrics only
            self.assertEqual(get(srv.addr, "/health").status, 200)


class ListenerTest(unittest.TestCase):
    def test_separate_listener_serves_only_probes_and_metrics(self):
        port = free_port()
        with Herald("--metrics-listen", f"127.0.0.1:{port}", workers=2) as srv:
            maddr = ("127.0.0.1", port)
            r = get(maddr)
            self.assertEqual(r.status, 200)
            self.assertIn(b"herald_workers 2\n", r.body)
            self.assertEqual(get(maddr, "/health").status, 200)
            self.assertEqual(get(maddr, "/ready").json(), {"status": "ready"})
            for path in ("/api/info", "/ws", "/sse", "/", "/metricsx"):
                r = get(maddr, path)
                self.assertEqual(r.status, 404, path)
                self.assertEqual(r.json()["status"], 404)
            # the main listener still serves everything
            self.assertEqual(get(srv.addr).status, 200)
            self.assertEqual(get(srv.addr, "/api/info").status, 405)  # POST only: it is routed

    def test_bad_address_is_a_start_up_error(self):
        r = run_herald("serve", "--listen", "127.0.0.1:0", "--metrics-listen", "nonsense")
        self.assertEqual(r.returncode, 2, (r.stdout + r.stderr).decode())
        self.assertIn("metrics.listen", (r.stdout + r.stderr).decode())


if __name__ == "__main__":
    main()
