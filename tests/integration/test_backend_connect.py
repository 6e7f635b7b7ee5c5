#!/usr/bin/env python3
"""test_backend_connect - the backend proxy hooks connect, refresh and rpc
(docs/backend.md) with the real herald binary and a real scripted backend
process on loopback (tests/tools/proxy_backend.py):
- connect: allow (the backend's user in the reply, a user-limited channel,
  its channels subscribed server-side and delivered, its data returned; the
  request carries the client, transport, protocol, remote address, only the
  allow-listed headers, the connect data and the static proxy.headers),
  deny with the backend's code (connection stays, a retry works), disconnect
  with its code, timeout / 500 / garbage / closed socket / backend down ->
  116 temporary, commands after a waiting connect held and answered in
  order, MessagePack and long polling too, a client gone mid-hook;
- rpc: routed by the longest prefix, else proxy.rpc_url; no URL -> 104;
  bad method names -> 107; the backend's error as-is;
- refresh: a new expire_at extends, expired:true ends (3005), failures are
  retried and then end at expiry (3005);
- /api/info counts calls and failures.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from herald_testlib import SLOW, Herald, HeraldTestCase, main  # noqa: E402
from herald_native import API_KEY, Api, Native, check_error, run  # noqa: E402
from proxy_backend import ProxyBackend  # noqa: E402
import websockets  # noqa: E402

def api_call(server, method, params=None):
    api = Api(server)
    try:
        return api.call(method, params)
    finally:
        api.close()


SECRET = "proxy-secret-0123456789abcdefghijklmnopqrstuvwxyz"


def token(user, secret=SECRET):
    """An HS256 connection token made here (no aud; exp in an hour)."""
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + \
        b64(json.dumps({"sub": user, "exp": int(time.time()) + 3600}).encode())
    return signing + "." + b64(hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest())


ALLOW = {"json": {"result": {"user": "42", "info": {"name": "Ann"}, "channels": ["news"], "data": {"hello": 1}}}}


class BackendCase(HeraldTestCase):
    """A backend process, then a server pointed at it."""

    backend = None
    server_workers = 1

    @classmethod
    def proxy_args(cls, be):
        return []

    @classmethod
    def setUpClass(cls):
        cls.backend = ProxyBackend().start()
        cls.server_args = ["--api-key", API_KEY] + cls.proxy_args(cls.backend)
        try:
            super().setUpClass()
        except BaseException:
            cls.backend.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.backend.stop()

    def setUp(self):
        self.backend.reset()


# TestConnect's hook timeout: held commands wait for a 300 ms answer inside it (with 400 ms, a loaded
# machine's scheduling of the backend's answer ran past it: 116 instead of the result), and the
# timeout case's backend answers after twice as long.
CONNECT_TIMEOUT_MS = int(1000 * SLOW)


class TestConnect(BackendCase):
    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", be.url("/connect"), "--proxy.connect-timeout", f"{CONNECT_TIMEOUT_MS}ms",
                "--proxy.headers", "X-Herald-Key: s3cret", "--proxy.rpc-url", be.url("/rpc"),
                "--proxy.rpc-routes", "chat.=" + be.url("/rpc_chat") + ",chat.admin.=" + be.url("/rpc_admin")]

    async def ws(self, extra_headers=None):
        """A /ws client not connected yet (with these request headers, and an Origin)."""
        ws = await websockets.connect(self.server.ws_url("/ws"), extra_headers=extra_headers or {},
                                      origin="http://%s:%d" % self.server.addr, ping_interval=None,
                                      open_timeout=10 * SLOW, close_timeout=3, max_size=None)
        return Native(ws)

    def test_allow_user_channels_data_and_request(self):
        self.backend.script(connect=ALLOW)

        async def go():
            c = await self.ws({"Cookie": "sid=abc", "X-Secret": "no"})
            res = await c.result("connect", {"data": {"a": 1}, "subs": ["other"]})
            self.assertEqual(res["user"], "42")
            self.assertEqual(res["data"], {"hello": 1})
            self.assertIn("news", res["subs"])
            self.assertIn("other", res["subs"])
            self.assertNotIn("error", res["subs"]["news"])
            # the backend's user: a user-limited channel is the user's own
            await c.result("subscribe", {"channel": "#42"})
            await c.error("subscribe", {"channel": "#43"}, 103)
            # a server-side channel delivers
            api_call(self.server, "publish", {"channel": "news", "data": {"n": 1}})
            pub = (await c.pubs(1, channel="news"))[0]
            self.assertEqual(pub["data"], {"n": 1})
            await c.close()

        run(go())
        req = self.backend.log("/connect")
        self.assertEqual(len(req), 1)
        body, headers = req[0]["body"], req[0]["headers"]
        self.assertEqual(body["transport"], "websocket")
        self.assertEqual(body["protocol"], "json")
        self.assertEqual(body["remote_addr"], "127.0.0.1")
        self.assertEqual(body["data"], {"a": 1})
        self.assertEqual(body["headers"].get("Cookie"), "sid=abc")
        self.assertIn("Origin", body["headers"])
        self.assertNotIn("X-Secret", body["headers"])
        self.assertTrue(body["client"])
        self.assertEqual(headers.get("X-Herald-Key"), "s3cret")

    def test_deny_as_is_then_retry(self):
        self.backend.script(connect=[{"json": {"error": {"code": 1000, "message": "no session",
                                                         "temporary": False}}}, ALLOW])

        async def go():
            c = await self.ws()
            reply = await c.call("connect", {})
            self.assertEqual(reply["error"], {"code": 1000, "message": "no session", "temporary": False})
            res = await c.result("connect", {})  # the connection stays: retry
            self.assertEqual(res["user"], "42")
            await c.close()

        run(go())

    def test_disconnect_code(self):
        self.backend.script(connect={"json": {"disconnect": {"code": 4403, "reason": "banned"}}})

        async def go():
            c = await self.ws()
            await c.call("connect", {})
            await asyncio.wait_for(c.closed.wait(), 5 * SLOW)
            self.assertEqual(c.ws.close_code, 4403)
            self.assertEqual(c.ws.close_reason, "banned")

        run(go())

    def check_unavailable(self, spec, max_s=2.0):
        if spec is not None:
            self.backend.script(connect=spec)

        async def go():
            c = await self.ws()
            t0 = time.monotonic()
            err = (await c.call("connect", {}, timeout=10))["error"]
            check_error(err, 116)
            self.assertLess(time.monotonic() - t0, max_s * SLOW)
            # not connected, still open: the client may retry
            await c.error("ping", {}, 114)
            await c.close()

        run(go())

    def test_timeout_is_116(self):
        self.check_unavailable({"delay_ms": 2 * CONNECT_TIMEOUT_MS, "json": ALLOW["json"]})

    def test_500_is_116(self):
        self.check_unavailable({"status": 500, "body": "oops"})

    def test_garbage_is_116(self):
        self.check_unavailable({"garbage": True})

    def test_wrong_shape_is_116(self):
        self.check_unavailable({"json": {"result": {"user": 42}}})

    def test_closed_socket_is_116(self):
        self.check_unavailable({"close": True})

    def test_held_commands_run_after_connect_in_order(self):
        self.backend.script(connect={"delay_ms": 300, **ALLOW})

        async def go():
            c = await self.ws()
            futs = await c.send_frame([("connect", {}), ("subscribe", {"channel": "later"})])
            more = await c.send_frame([("ping", {}), ("presence_stats", {"channel": "news"})])
            replies = [await asyncio.wait_for(f, 5 * SLOW) for _, f in futs + more]
            for r in replies:
                self.assertIn("result", r, r)
            self.assertEqual(replies[0]["result"]["user"], "42")
            ids = [i for _, i in c.reply_log]
            self.assertEqual(ids, sorted(ids))
            await c.close()

        run(go())

    def test_msgpack(self):
        self.backend.script(connect=ALLOW)

        async def go():
            c = await Native.open(self.server, connect=False, encoding="msgpack")
            res = await c.result("connect", {})
            self.assertEqual(res["user"], "42")
            self.assertEqual(res["data"], {"hello": 1})
            await c.close()

        run(go())
        self.assertEqual(self.backend.log("/connect")[0]["body"]["protocol"], "msgpack")

    def test_long_poll_session(self):
        from emu_client import Poller
        self.backend.script(connect=ALLOW)
        p = Poller(self.server)
        try:
            p.open()
            cid = p.command("connect", {})
            reply = p.wait_reply(cid)
            self.assertEqual(reply["result"]["user"], "42")
        finally:
            p.close()
        self.assertEqual(self.backend.log("/connect")[0]["body"]["transport"], "long_poll")

    def test_client_gone_mid_hook(self):
        self.backend.script(connect={"delay_ms": 500, **ALLOW})

        async def go():
            for _ in range(5):
                c = await self.ws()
                await c.ws.send('{"id":1,"connect":{}}')
                await c.close()
            await asyncio.sleep(0.8 * SLOW)
            c = await self.ws()  # the server is well
            self.backend.script(connect=ALLOW)
            self.assertEqual((await c.result("connect", {}))["user"], "42")
            await c.close()

        run(go())
        info = api_call(self.server, "info")["nodes"][0]["proxy"]
        self.assertEqual(info["inflight"], 0)

    def test_client_gone_mid_rpc(self):
        self.backend.script(connect=ALLOW, rpc={"delay_ms": 500, "json": {"result": {}}})

        async def go():
            c = await self.ws()
            await c.result("connect", {})
            await c.ws.send('{"id":7,"rpc":{"method":"slow"}}\n{"id":8,"rpc":{"method":"slow"}}')
            await c.close()
            await asyncio.sleep(0.8 * SLOW)

        run(go())
        self.assertEqual(api_call(self.server, "info")["nodes"][0]["proxy"]["inflight"], 0)

    def test_rpc_routes(self):
        self.backend.script(connect=ALLOW, rpc={"json": {"result": {"data": {"from": "rpc"}}}},
                            rpc_chat={"json": {"result": {"data": {"from": "chat"}}}},
                            rpc_admin={"json": {"error": {"code": 1403, "message": "admins only",
                                                          "temporary": False}}})

        async def go():
            c = await self.ws()
            await c.error("rpc", {"method": "x"}, 114)  # needs a connected session
            await c.result("connect", {})
            self.assertEqual(await c.result("rpc", {"method": "chat.send", "data": {"t": "hi"}}),
                             {"data": {"from": "chat"}})
            self.assertEqual(await c.result("rpc", {"method": "other"}), {"data": {"from": "rpc"}})
            err = await c.call("rpc", {"method": "chat.admin.kick"})
            self.assertEqual(err["error"], {"code": 1403, "message": "admins only", "temporary": False})
            await c.error("rpc", {"method": ""}, 107)
            await c.error("rpc", {"method": "a b"}, 107)
            await c.error("rpc", {"method": "x" * 129}, 107)
            await c.close()

        run(go())
        chat = self.backend.log("/rpc_chat")[0]["body"]
        self.assertEqual((chat["method"], chat["user"], chat["data"]), ("chat.send", "42", {"t": "hi"}))

    def test_info_counts(self):
        self.backend.script(connect={"status": 500, "body": ""})
        before = api_call(self.server, "info")["nodes"][0]["proxy"]

        async def go():
            c = await self.ws()
            await c.error("connect", {}, 116)
            await c.close()

        run(go())
        after = api_call(self.server, "info")["nodes"][0]["proxy"]
        self.assertEqual(after["calls"], before["calls"] + 1)
        self.assertEqual(after["failures"]["status"], before["failures"]["status"] + 1)


class TestTokens(BackendCase):
    """proxy.connect_with_token = false: a valid token skips the hook."""

    with_token = False

    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", be.url("/connect"), "--auth.token-hmac-secret", SECRET] + \
            (["--proxy.connect-with-token"] if cls.with_token else [])

    def test_token_skips_hook(self):
        self.backend.script(connect=ALLOW)

        async def go():
            c = await Native.open(self.server, token=token("w"))
            self.assertEqual(c.connect_result["user"], "w")
            await c.close()

        run(go())
        self.assertEqual(self.backend.log("/connect"), [])


class TestConnectWithToken(TestTokens):
    """proxy.connect_with_token = true: the token must verify, then the backend decides."""

    with_token = True

    def test_token_skips_hook(self):
        pass

    def test_backend_decides_after_the_token(self):
        self.backend.script(connect=[{"json": {"error": {"code": 1001, "message": "not today"}}}, ALLOW])

        async def go():
            c = await Native.open(self.server, connect=False)
            err = (await c.call("connect", {"token": token("w")}))["error"]
            self.assertEqual(err["code"], 1001)
            await c.error("ping", {}, 114)  # not connected, not the token's user either
            res = await c.result("connect", {"token": token("w")})
            self.assertEqual(res["user"], "42")
            await c.close()
            bad = await Native.open(self.server, connect=False)
            await bad.error("connect", {"token": token("w", secret="x" * 40)}, 101)
            await bad.close()

        run(go())
        self.assertEqual(len(self.backend.log("/connect")), 2)  # not for the bad token


class TestSSE(BackendCase):
    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", be.url("/connect"), "--proxy.connect-timeout", "400ms"]

    def sse(self, path, headers=None):
        from test_sse import SSE
        return SSE(self.server, path, headers=headers)

    def test_allow_user_and_channels(self):
        self.backend.script(connect={"json": {"result": {"user": "42", "channels": ["news"]}}})
        s = self.sse("/sse?channel=%2342", {"Cookie": "sid=1"})  # #42: the backend's user's own channel
        self.assertEqual(s.status, 200, s.response.body)
        client = s.response.header("X-Herald-Client")
        api_call(self.server, "publish", {"channel": "news", "data": {"n": 1}})
        api_call(self.server, "publish", {"channel": "#42", "data": {"n": 2}})
        evs = []
        for _ in range(5):  # the publications (after the stream's own first event)
            e = s.next()
            if e.type == "message":
                evs.append(json.loads(e.data)["n"])
            if len(evs) == 2:
                break
        got = sorted(evs)
        self.assertEqual(got, [1, 2])
        s.conn.close()
        body = self.backend.log("/connect")[0]["body"]
        self.assertEqual((body["transport"], body["client"], body["headers"]), ("sse", client, {"Cookie": "sid=1"}))

    def test_url_channel_checked_for_that_user(self):
        self.backend.script(connect={"json": {"result": {"user": "42"}}})
        s = self.sse("/sse?channel=%2343")
        self.assertEqual(s.status, 403)
        s.conn.close()
        s = self.sse("/sse?channel=%2342")
        self.assertEqual(s.status, 200, s.response.body)
        s.conn.close()

    def test_deny_and_failures(self):
        cases = [({"json": {"error": {"code": 1000, "message": "no session"}}}, 403, 1000, "no session"),
                 ({"json": {"disconnect": {"code": 4403, "reason": "banned"}}}, 403, 4403, "banned"),
                 ({"status": 500, "body": ""}, 502, 116, None),
                 ({"garbage": True}, 502, 116, None),
                 ({"delay_ms": 1500, "json": {"result": {"user": ""}}}, 504, 116, None)]
        for spec, status, code, message in cases:
            self.backend.script(connect=spec)
            s = self.sse("/sse?channel=news")
            self.assertEqual(s.status, status, (spec, s.response.body))
            body = json.loads(s.response.body)
            self.assertEqual(body["code"], code)
            if message:
                self.assertEqual(body["error"], message)
            s.conn.close()


class TestShutdownMidHook(BackendCase):
    """A server stopped while HTTP sessions and a WebSocket wait for the
    backend exits cleanly (exit 0; under ASan: no leak, no use after free)."""

    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", be.url("/connect"), "--proxy.connect-timeout", "5s"]

    def test_stop_with_calls_in_flight(self):
        from emu_client import Poller
        self.backend.script(connect={"delay_ms": 3000, **ALLOW})
        with Herald(*self.server_args, workers=1) as srv:
            p = Poller(srv)
            p.open()
            p.command("connect", {})

            async def go():
                c = await Native.open(srv, connect=False)
                await c.ws.send('{"id":1,"connect":{}}')
                await asyncio.sleep(0.3 * SLOW)
                self.assertEqual(api_call(srv, "info")["nodes"][0]["proxy"]["inflight"], 2)
                self.assertEqual(srv.stop(), 0)

            run(go())
            p.close()


class TestBackendDown(BackendCase):
    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", "http://127.0.0.1:1/connect"]

    def test_sse_down_is_503(self):
        from test_sse import SSE
        s = SSE(self.server, "/sse?channel=news")
        self.assertEqual(s.status, 503)
        self.assertEqual(json.loads(s.response.body)["code"], 116)
        s.conn.close()

    def test_down_is_116(self):
        async def go():
            c = await Native.open(self.server, connect=False)
            await c.error("connect", {}, 116)
            await c.error("rpc", {"method": "m"}, 114)
            await c.close()

        run(go())


class TestOptions(BackendCase):
    """No rpc URL; proxy.max_response_bytes and proxy.forward_headers set."""

    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", be.url("/connect"), "--proxy.max-response-bytes", "1KiB",
                "--proxy.forward-headers", "X-Session"]

    def test_answer_over_max_response_bytes_is_116(self):
        self.backend.script(connect=[{"json": {"result": {"user": "1", "data": "x" * 2000}}},
                                     {"json": {"result": {"user": "1", "data": "x" * 500}}}])

        async def go():
            c = await Native.open(self.server, connect=False)
            await c.error("connect", {}, 116)
            self.assertEqual(len((await c.result("connect", {}))["data"]), 500)
            await c.close()

        run(go())

    def test_forward_headers_option(self):
        self.backend.script(connect=ALLOW)

        async def go():
            ws = await websockets.connect(self.server.ws_url("/ws"), extra_headers={"X-Session": "s1", "Cookie": "c"},
                                          ping_interval=None, open_timeout=10 * SLOW, close_timeout=3)
            c = Native(ws)
            await c.result("connect", {})
            await c.close()

        run(go())
        self.assertEqual(self.backend.log("/connect")[0]["body"]["headers"], {"X-Session": "s1"})

    def test_rpc_without_url_is_104(self):
        self.backend.script(connect=ALLOW)

        async def go():
            c = await Native.open(self.server, connect=False)
            await c.result("connect", {})
            err = await c.error("rpc", {"method": "m"}, 104)
            self.assertIn("proxy.rpc_url", err.get("detail", ""))
            await c.close()

        run(go())


class TestRefresh(BackendCase):
    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", be.url("/connect"), "--proxy.refresh-url", be.url("/refresh"),
                "--proxy.refresh-timeout", "300ms"]

    def connect_for(self, seconds):
        self.backend.script(connect={"json": {"result": {"user": "7", "expire_at": int(time.time()) + seconds}}})

    def test_extends(self):
        self.connect_for(2)
        self.backend.script(refresh={"json": {"result": {"expire_at": int(time.time()) + 3600}}})

        async def go():
            c = await Native.open(self.server, connect=False)
            res = await c.result("connect", {})
            self.assertTrue(res["expires"])
            await asyncio.sleep(3.0)
            await c.result("ping", {})  # still connected past the first expiry
            await c.close()

        run(go())
        body = self.backend.log("/refresh")[0]["body"]
        self.assertEqual(body["user"], "7")

    def test_expired_ends_3005(self):
        self.connect_for(2)
        self.backend.script(refresh={"json": {"result": {"expired": True}}})

        async def go():
            c = await Native.open(self.server, connect=False)
            await c.result("connect", {})
            await asyncio.wait_for(c.closed.wait(), 5 * SLOW)
            self.assertEqual(c.ws.close_code, 3005)

        run(go())

    def test_failures_retry_then_3005_at_expiry(self):
        self.connect_for(2)
        self.backend.script(refresh={"status": 500, "body": ""})

        async def go():
            c = await Native.open(self.server, connect=False)
            await c.result("connect", {})
            t0 = time.monotonic()
            await asyncio.wait_for(c.closed.wait(), 6 * SLOW)
            self.assertEqual(c.ws.close_code, 3005)
            self.assertGreater(time.monotonic() - t0, 0.5)

        run(go())
        self.assertGreaterEqual(len(self.backend.log("/refresh")), 2)


if __name__ == "__main__":
    main()
