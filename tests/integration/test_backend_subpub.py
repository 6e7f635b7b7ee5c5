#!/usr/bin/env python3
"""The subscribe and publish proxy hooks (docs/backend.md) against the real
herald binary and a real HTTP backend on loopback (a Python http.server in
this process whose answers each test scripts, and which counts its calls).

Covers: subscribe allow / deny (the backend's code and message) / disconnect
/ info override (in presence and the join push) / data in the reply /
timeout, 500, malformed answer and backend down (116, temporary); every ops
rule first (a denied client never reaches the backend); publish allow / deny
/ rewrite (subscribers see the backend's data) / timeout / down; two
publishes of one client with a slow first answer stay in order; a namespace
without the flags never calls the backend; /sse waits for the subscribe
hooks of its URL channels (403 / 504 on refusal); /ws/raw publishes go
through the publish hook in order (3503 / 3011 on refusal) and a URL channel
that needs the subscribe hook is refused (501), never subscribed without
it; connect's subscriptions, /poll, the Redis engine, the bound on waiting
publishes, and SIGTERM with hooks in flight; the server API never calls
the publish hook.
"""

import asyncio
import http.server
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, main  # noqa: E402
from herald_native import API_KEY, Api, Native, run  # noqa: E402
from emu_client import Poller  # noqa: E402
from redis_cluster import RedisServer, node, redis_available  # noqa: E402

import websockets  # noqa: E402


class Backend:
    """A loopback HTTP backend: answer(path, body) -> (status, bytes, delay_s)
    decides each reply; calls lists (path, body) in arrival order."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()
        self.answer = lambda path, body: (200, b'{"result":{}}', 0)
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with backend.lock:
                    backend.calls.append((self.path, body))
                status, out, delay = backend.answer(self.path, body)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                try:
                    self.wfile.write(out)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self, answer):
        with self.lock:
            self.calls = []
        self.answer = answer

    def paths(self):
        with self.lock:
            return [p for p, _ in self.calls]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def ok(result=None, delay=0):
    return lambda path, body: (200, json.dumps({"result": result or {}}).encode(), delay)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_seq = [0]


def chan(ns):
    _seq[0] += 1
    return f"{ns}:{os.getpid()}-{_seq[0]}"


def hook_args(backend_url):
    return ("--api-key", API_KEY,
            "--proxy.subscribe-url", backend_url("/subscribe"), "--proxy.subscribe-timeout", "500ms",
            "--proxy.publish-url", backend_url("/publish"), "--proxy.publish-timeout", "500ms",
            "--channels.publish", "anyone", "--namespace.hs.join-leave", "true",
            "--namespace.hs.proxy-subscribe", "true",
            "--namespace.hp.proxy-publish", "true",
            "--namespace.members.proxy-subscribe", "true", "--namespace.members.allow-anonymous", "false")


class SubscribeAndPublishHooks(HeraldTestCase):
    server_workers = 1

    @classmethod
    def make_server(cls):
        cls.backend = Backend()
        return Herald(*hook_args(cls.backend.url), workers=1)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.backend.close()

    # -- subscribe -----------------------------------------------------------

    def test_subscribe_allowed_with_info_and_data(self):
        self.backend.reset(ok({"info": {"role": "mod"}, "data": {"welcome": 1}}))
        ch = chan("hs")

        async def go():
            watcher = await Native.open(self.server)
            c = await Native.open(self.server)
            await watcher.result("subscribe", {"channel": ch})
            res = await c.result("subscribe", {"channel": ch})
            self.assertEqual(res["data"], {"welcome": 1})
            join = await asyncio.wait_for(watcher.pushes.get(), 5 * SLOW)
            self.assertEqual(join["join"]["info"]["info"], {"role": "mod"})
            pres = await c.result("presence", {"channel": ch})
            self.assertEqual(pres["clients"][c.client_id]["info"], {"role": "mod"})
            body = [b for p, b in self.backend.calls if b["client"] == c.client_id][0]
            self.assertEqual(body["channel"], ch)
            self.assertEqual(body["transport"], "websocket")
            # a publication reaches the hooked subscription
            pub = await c.result("publish", {"channel": ch, "data": {"x": 1}})
            self.assertIn("offset", pub)
        run(go())

    def test_connect_subs_ask_the_hook(self):
        # connect's own subscriptions go through the hook: its yes and its error, each in place
        self.backend.reset(lambda p, b: (200, b'{"result":{"data":7}}' if b["channel"].endswith("a") else
                                         b'{"error":{"code":1001,"message":"no"}}', 0))
        ok_ch, no_ch = chan("hs") + "a", chan("hs") + "b"

        async def go():
            c = await Native.open(self.server, subs=[ok_ch, no_ch])
            subs = c.connect_result["subs"]
            self.assertEqual(subs[ok_ch]["data"], 7)
            self.assertEqual((subs[no_ch]["error"]["code"], subs[no_ch]["error"]["message"]), (1001, "no"))
        run(go())
        self.assertEqual(self.backend.paths(), ["/subscribe"] * 2)

    def test_subscribe_denied_by_backend(self):
        self.backend.reset(lambda p, b: (200, b'{"error":{"code":1001,"message":"no such room","temporary":true}}', 0))
        ch = chan("hs")

        async def go():
            c = await Native.open(self.server)
            err = (await c.call("subscribe", {"channel": ch}))["error"]
            self.assertEqual((err["code"], err["message"], err["temporary"]), (1001, "no such room", True))
            # not subscribed: a publication does not reach it
            Api(self.server).call("publish", {"channel": ch, "data": 1})
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(c.pushes.get(), 0.3)
        run(go())

    def test_subscribe_disconnect_by_backend(self):
        self.backend.reset(lambda p, b: (200, b'{"disconnect":{"code":4403,"reason":"banned"}}', 0))

        async def go():
            c = await Native.open(self.server)
            reply = await c.call("subscribe", {"channel": chan("hs")})
            self.assertIn("error", reply)
            await asyncio.wait_for(c.closed.wait(), 5 * SLOW)
            self.assertEqual((c.ws.close_code, c.ws.close_reason), (4403, "banned"))
        run(go())

    def assert_unavailable(self, answer, ns="hs", method="subscribe"):
        self.backend.reset(answer)

        async def go():
            c = await Native.open(self.server)
            params = {"channel": chan(ns)}
            if method == "publish":
                params["data"] = {"t": 1}
            t0 = time.monotonic()
            err = (await c.call(method, params))["error"]
            self.assertEqual((err["code"], err["message"], err["temporary"]), (116, "backend unavailable", True))
            self.assertLess(time.monotonic() - t0, 3 * SLOW)
            # the connection goes on
            self.backend.answer = ok()
            await c.result(method, params)
        run(go())

    def test_subscribe_backend_timeout(self):
        self.assert_unavailable(ok(delay=1.5))

    def test_subscribe_backend_500(self):
        self.assert_unavailable(lambda p, b: (500, b'{"result":{}}', 0))

    def test_subscribe_backend_malformed(self):
        self.assert_unavailable(lambda p, b: (200, b'{"result":{"unknown":1}}', 0))

    def test_rules_before_the_backend(self):
        self.backend.reset(ok())

        async def go():
            anon = await Native.open(self.server)
            err = (await anon.call("subscribe", {"channel": chan("members")}))["error"]
            self.assertEqual(err["code"], 103)
        run(go())
        self.assertEqual(self.backend.paths(), [])

    def test_namespace_without_flags_never_calls(self):
        self.backend.reset(ok())

        async def go():
            c = await Native.open(self.server)
            ch = chan("plain")
            await c.result("subscribe", {"channel": ch})
            await c.result("publish", {"channel": ch, "data": 1})
            await c.result("subscribe", {"channel": chan("hp")})  # hp: publish only
        run(go())
        self.assertEqual(self.backend.paths(), [])

    # -- publish -------------------------------------------------------------

    def test_publish_rewritten(self):
        self.backend.reset(lambda p, b: (200, json.dumps(
            {"result": {"data": {"text": b["data"]["text"].upper(), "by": "backend"}}}).encode(), 0))
        ch = chan("hp")

        async def go():
            sub = await Native.open(self.server)
            await sub.result("subscribe", {"channel": ch})
            c = await Native.open(self.server)
            await c.result("publish", {"channel": ch, "data": {"text": "hi"}})
            push = await asyncio.wait_for(sub.pushes.get(), 5 * SLOW)
            self.assertEqual(push["pub"]["data"], {"text": "HI", "by": "backend"})
        run(go())
        self.assertEqual(self.backend.paths(), ["/publish"])
        self.assertEqual(self.backend.calls[0][1]["data"], {"text": "hi"})

    def test_publish_denied(self):
        self.backend.reset(lambda p, b: (200, b'{"error":{"code":1403,"message":"read only"}}', 0))
        ch = chan("hp")

        async def go():
            sub = await Native.open(self.server)
            await sub.result("subscribe", {"channel": ch})
            c = await Native.open(self.server)
            err = (await c.call("publish", {"channel": ch, "data": 1}))["error"]
            self.assertEqual((err["code"], err["message"], err["temporary"]), (1403, "read only", False))
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(sub.pushes.get(), 0.3)
            hist = Api(self.server).call("history", {"channel": ch})
            self.assertEqual(hist["publications"], [])
        run(go())

    def test_publish_timeout(self):
        self.assert_unavailable(ok(delay=1.5), ns="hp", method="publish")

    def test_publish_order_with_slow_first_answer(self):
        # the first publish's answer is slow, the second's immediate: delivered in send order
        def answer(p, b):
            return (200, b'{"result":{}}', 0.4 if b["data"] == 1 else 0)
        self.backend.reset(answer)
        ch = chan("hp")

        async def go():
            sub = await Native.open(self.server)
            await sub.result("subscribe", {"channel": ch})
            c = await Native.open(self.server)
            futs = await c.send_frame([("publish", {"channel": ch, "data": 1})])
            futs += await c.send_frame([("publish", {"channel": ch, "data": 2})])
            replies = [await asyncio.wait_for(f, 5 * SLOW) for _, f in futs]
            self.assertLess(replies[0]["result"]["offset"], replies[1]["result"]["offset"])
            got = [(await asyncio.wait_for(sub.pushes.get(), 5 * SLOW))["pub"]["data"] for _ in range(2)]
            self.assertEqual(got, [1, 2])
        run(go())

    def test_server_api_never_calls(self):
        self.backend.reset(ok())
        api = Api(self.server)
        api.call("publish", {"channel": chan("hp"), "data": 1})
        api.close()
        self.assertEqual(self.backend.paths(), [])

    def test_long_poll_waits_for_hooks(self):
        # /poll (and /stream) run the native session: the hooks apply there too
        self.backend.reset(lambda p, b: (200, json.dumps(
            {"result": {"data": "rewritten"} if p == "/publish" else {"data": {"hi": 1}}}).encode(), 0.2))
        ch = chan("hs")
        pch = chan("hp")
        poller = Poller(self.server)
        poller.open()
        poller.command("connect")
        sub = poller.command("subscribe", {"channel": ch})
        pub = poller.command("publish", {"channel": pch, "data": "original"})
        self.assertEqual(poller.wait_reply(sub)["result"]["data"], {"hi": 1})
        self.assertIn("offset", poller.wait_reply(pub)["result"])
        poller.close()
        hist = Api(self.server).call("history", {"channel": pch})
        self.assertEqual([p["data"] for p in hist["publications"]], ["rewritten"])
        self.assertEqual(sorted(self.backend.paths()), ["/publish", "/subscribe"])

    # -- front ends that cannot wait ------------------------------------------

    def test_sse_waits_for_subscribe_hooks(self):
        # /sse asks the hook of every URL channel that needs it before the stream starts
        self.backend.reset(ok())
        a, b, plain = chan("hs"), chan("hs"), chan("plain")
        conn = self.server.http()
        conn.sock.sendall(f"GET /sse?channel={a}&channel={b}&channel={plain} HTTP/1.1\r\nHost: x\r\n"
                          f"Accept: text/event-stream\r\n\r\n".encode())
        head = conn.read_head(time.monotonic() + 5 * SLOW)
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        conn.close()
        self.assertEqual(sorted(b["channel"] for _, b in self.backend.calls), sorted([a, b]))
        self.assertEqual({b["transport"] for _, b in self.backend.calls}, {"sse"})
        # the backend's error: 403 with its code and message; a slow backend: 504, code 116
        for answer, status, code in ((lambda p, b: (200, b'{"error":{"code":1001,"message":"no such room"}}', 0),
                                      403, 1001), (ok(delay=1.5), 504, 116)):
            self.backend.reset(answer)
            conn = self.server.http()
            r = conn.request("GET", f"/sse?channel={chan('hs')}", [("Accept", "text/event-stream")], timeout=5)
            conn.close()
            self.assertEqual((r.status, r.json()["code"]), (status, code))
            if code == 1001:
                self.assertEqual(r.json()["error"], "no such room")

    def test_ws_raw(self):
        # a URL channel that needs the subscribe hook: refused (501), never subscribed without it
        async def refused():
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
                await websockets.connect(self.server.ws_url(f"/ws/raw?channel={chan('hs')}"))
            self.assertEqual(cm.exception.status_code, 501)
        self.backend.reset(ok())
        run(refused())
        self.assertEqual(self.backend.paths(), [])
        # raw-mode publishes go through the publish hook, in order, rewritten by the backend
        self.backend.reset(lambda p, b: (200, json.dumps({"result": {"data": {"n": b["data"]["n"] * 10}}}).encode(),
                                         0.3 if b["data"]["n"] == 1 else 0))
        ch = chan("hp")

        async def publish():
            ws = await websockets.connect(self.server.ws_url(f"/ws/raw?channel={ch}"))
            await ws.send('{"n":1}')
            await ws.send('{"n":2}')
            got = [json.loads(await asyncio.wait_for(ws.recv(), 5 * SLOW)) for _ in range(2)]
            self.assertEqual(got, [{"n": 10}, {"n": 20}])
            # the backend's error closes the raw connection with 3503 and its message
            self.backend.answer = lambda p, b: (200, b'{"error":{"code":1403,"message":"read only"}}', 0)
            await ws.send('{"n":3}')
            await asyncio.wait_for(ws.wait_closed(), 5 * SLOW)
            self.assertEqual((ws.close_code, ws.close_reason), (3503, "read only"))
            # a backend that does not answer in time: 3011, reconnect later
            self.backend.answer = ok(delay=1.5)
            ws = await websockets.connect(self.server.ws_url(f"/ws/raw?channel={ch}"))
            await ws.send('{"n":4}')
            await asyncio.wait_for(ws.wait_closed(), 5 * SLOW)
            self.assertEqual(ws.close_code, 3011)
        run(publish())
        self.assertEqual(self.backend.paths(), ["/publish"] * 4)


class BackendDown(HeraldTestCase):
    server_workers = 1

    @classmethod
    def make_server(cls):
        port = closed_port()
        return Herald(*hook_args(lambda p: f"http://127.0.0.1:{port}{p}"), workers=1)

    def test_down(self):
        async def go():
            c = await Native.open(self.server)
            for method in ("subscribe", "publish"):
                ns = "hs" if method == "subscribe" else "hp"
                err = (await c.call(method, {"channel": chan(ns), "data": 1}))["error"]
                self.assertEqual((err["code"], err["temporary"]), (116, True), method)
        run(go())


class WaitingPublishesBounded(HeraldTestCase):
    """Publishes waiting behind one that waits for its hook hold the client's
    bytes: they count against channels.reply_budget (past it: 111)."""
    server_workers = 1

    @classmethod
    def make_server(cls):
        cls.backend = Backend()
        return Herald(*hook_args(cls.backend.url), "--channels.reply-budget", "64KiB", workers=1)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.backend.close()

    def test_budget(self):
        self.backend.reset(ok(delay=0.3))
        ch = chan("hp")
        big = "x" * 30000

        async def go():
            c = await Native.open(self.server)
            futs = await c.send_frame([("publish", {"channel": ch, "data": 0})] +
                                      [("publish", {"channel": ch, "data": big})] * 3)
            replies = [await asyncio.wait_for(f, 5 * SLOW) for _, f in futs]
            self.assertIn("result", replies[0])
            self.assertIn("result", replies[1])
            refused = [r["error"] for r in replies[2:] if "error" in r]
            self.assertTrue(refused, replies)
            self.assertEqual((refused[0]["code"], refused[0]["temporary"]), (111, True))
            self.assertIn("channels.reply_budget", refused[0]["detail"])
        run(go())


class StopWithHooksInFlight(HeraldTestCase):
    """SIGTERM while subscribe and publish hooks wait (WebSocket and /poll):
    the server exits 0 (under ASan: nothing leaked), however long the
    backend would take."""
    server_workers = 1

    @classmethod
    def make_server(cls):
        cls.backend = Backend()
        cls.backend.reset(ok(delay=10))
        args = list(hook_args(cls.backend.url))
        for opt in ("--proxy.subscribe-timeout", "--proxy.publish-timeout"):
            args[args.index(opt) + 1] = "30s"
        return Herald(*args, workers=1)

    @classmethod
    def tearDownClass(cls):
        t0 = time.monotonic()
        super().tearDownClass()  # asserts exit code 0
        cls.backend.close()
        assert time.monotonic() - t0 < 8 * SLOW, "the server waited for the backend to stop"

    def test_in_flight(self):
        async def go():
            c = await Native.open(self.server)
            await c.send_frame([("subscribe", {"channel": chan("hs")}), ("publish", {"channel": chan("hp"), "data": 1}),
                                ("publish", {"channel": chan("hp"), "data": 2})])
            poller = Poller(self.server)
            poller.open()
            poller.command("connect")
            poller.command("publish", {"channel": chan("hp"), "data": 3})
            poller.close()
            deadline = time.monotonic() + 5 * SLOW
            while len(self.backend.paths()) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self.assertEqual(sorted(self.backend.paths()), ["/publish", "/publish", "/subscribe"])
            c.waiting.clear()  # the replies come at shutdown (116) or not at all
        run(go())


@unittest.skipUnless(redis_available(), "redis-server is not installed")
class RedisEngine(unittest.TestCase):
    """The hooks run before the engine: the same on Redis, across two nodes."""

    def test_subscribe_and_publish_on_redis(self):
        backend = Backend()
        backend.reset(lambda p, b: (200, json.dumps(
            {"result": {"data": {"v": b["data"]["v"] * 10}} if p == "/publish" else {}}).encode(), 0))
        try:
            with RedisServer() as redis, node(redis.addr, *hook_args(backend.url)[2:], workers=1) as a, \
                    node(redis.addr, *hook_args(backend.url)[2:], workers=1) as b:
                ch = chan("hs")
                pch = chan("hp")

                async def go():
                    sub = await Native.open(a)
                    await sub.result("subscribe", {"channel": ch})
                    await sub.result("subscribe", {"channel": pch})
                    pub = await Native.open(b)
                    await pub.result("publish", {"channel": pch, "data": {"v": 4}})
                    push = {}
                    while "pub" not in push:  # its own join push in hs comes first
                        push = await asyncio.wait_for(sub.pushes.get(), 5 * SLOW)
                    self.assertEqual((push["pub"]["channel"], push["pub"]["data"]), (pch, {"v": 40}))
                run(go())
                self.assertEqual(sorted(backend.paths()), ["/publish", "/subscribe"])
        finally:
            backend.close()


if __name__ == "__main__":
    main()
