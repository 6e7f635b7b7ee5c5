#!/usr/bin/env python3
"""test_backend_remote - the client's address the backend is told
(docs/backend.md: the connect hook's remote_addr, client_connected's remote)
is the one after trusted-proxy resolution, on every transport: a real
herald with server.trusted_proxies = 127.0.0.1, a scripted connect hook
(tests/tools/proxy_backend.py) and a webhook receiver, clients sending
X-Forwarded-For from loopback:
- native WebSocket through the connect hook: remote_addr and remote are the
  forwarded address;
- a /poll session: remote is the address of the request that opened it;
- /sse (through the connect hook, and with a token) and /ws/raw: the
  forwarded address;
- a client with no forwarding header: its own address (127.0.0.1).
"""
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from herald_testlib import SLOW, HeraldTestCase, HttpConn, main  # noqa: E402
from herald_native import Native, run  # noqa: E402
from proxy_backend import ProxyBackend  # noqa: E402
from test_auth import conn_token  # noqa: E402
from test_backend_webhook import Receiver, herald  # noqa: E402
from emu_client import Poller  # noqa: E402
import websockets  # noqa: E402

ALLOW = {"json": {"result": {"user": "42"}}}


class TestRemoteAddress(HeraldTestCase):
    @classmethod
    def make_server(cls):
        cls.rec = Receiver().start()
        cls.backend = ProxyBackend().start()
        return herald(cls.rec, "--trusted-proxies", "127.0.0.1", "--proxy.connect-url", cls.backend.url("/connect"),
                      "--webhook.events", "client_connected", workers=1)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.rec.stop()
            cls.backend.stop()

    def setUp(self):
        self.backend.reset()
        self.backend.script(connect=ALLOW)

    def connected(self, cid):
        """The client_connected event of client cid (waits for it)."""
        evs = self.rec.wait(lambda e: any(x["event"] == "client_connected" and x["client"] == cid for x in e))
        got = [e for e in evs if e["event"] == "client_connected" and e["client"] == cid]
        self.assertEqual(len(got), 1, f"client_connected of {cid}: {got}")
        return got[0]

    def test_websocket_through_a_trusted_proxy(self):
        async def go():
            ws = await websockets.connect(self.server.ws_url("/ws"), ping_interval=None, open_timeout=10 * SLOW,
                                          extra_headers={"X-Forwarded-For": "198.51.100.7"})
            c = Native(ws, "json")
            res = await c.result("connect", {})
            await c.close()
            return res["client"]
        cid = run(go())
        hook = self.backend.log("/connect")
        self.assertEqual([r["body"]["remote_addr"] for r in hook], ["198.51.100.7"])
        self.assertEqual(self.connected(cid)["remote"], "198.51.100.7")

    def test_websocket_without_forwarding_header(self):
        async def go():
            c = await Native.open(self.server)
            await c.close()
            return c.client_id
        cid = run(go())
        self.assertEqual([r["body"]["remote_addr"] for r in self.backend.log("/connect")], ["127.0.0.1"])
        self.assertEqual(self.connected(cid)["remote"], "127.0.0.1")

    def test_poll_session_has_the_opening_requests_address(self):
        p = Poller(self.server)
        self.addCleanup(p.close)
        r = p.request("POST", "/poll/open", headers={"X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(r.status, 200, r)
        p.session = r.json()["session"]
        rep = p.connect_subscribe("remote" + os.urandom(4).hex())
        cid = [m for m in p.lines.values() if m.get("id") == 1][0]["result"]["client"]
        self.assertIn("result", rep)
        self.assertEqual([r["body"]["remote_addr"] for r in self.backend.log("/connect")], ["203.0.113.9"])
        self.assertEqual(self.connected(cid)["remote"], "203.0.113.9")

    def sse_client(self, query, xff):
        conn = HttpConn(self.server.addr)
        self.addCleanup(conn.close)
        conn.send(f"GET /sse?{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                  f"X-Forwarded-For: {xff}\r\n\r\n".encode())
        return conn

    def sse_connected_remotes(self, remote):
        evs = self.rec.wait(lambda e: any(x["event"] == "client_connected" and x["transport"] == "sse"
                                          and x.get("remote") == remote for x in e))
        return [e for e in evs if e["event"] == "client_connected" and e["transport"] == "sse"
                and e.get("remote") == remote]

    def test_sse_through_the_connect_hook_and_with_a_token(self):
        ch = "feed" + os.urandom(4).hex()
        self.sse_client(f"channel={ch}", "192.0.2.10")
        self.assertEqual(len(self.sse_connected_remotes("192.0.2.10")), 1)
        self.assertEqual([r["body"]["remote_addr"] for r in self.backend.log("/connect")], ["192.0.2.10"])
        self.sse_client(f"channel={ch}&token={conn_token('bob')}", "192.0.2.11")
        self.assertEqual(len(self.sse_connected_remotes("192.0.2.11")), 1)

    def test_raw_websocket(self):
        ch = "raw" + os.urandom(4).hex()
        ws = self.server.ws(f"/ws/raw?channel={ch}&token={conn_token('carol')}",
                            headers={"X-Forwarded-For": "192.0.2.20"})
        self.addCleanup(ws.close_socket)
        evs = self.rec.wait(lambda e: any(x["event"] == "client_connected" and x["transport"] == "websocket-raw"
                                          for x in e))
        got = [e.get("remote") for e in evs if e["event"] == "client_connected" and e["transport"] == "websocket-raw"]
        self.assertEqual(got, ["192.0.2.20"])


if __name__ == "__main__":
    main()
