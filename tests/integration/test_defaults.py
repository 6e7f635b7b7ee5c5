#!/usr/bin/env python3
"""Safe defaults of `herald serve` without a config (docs/security.md, "Safe
defaults"), against the real binary.

Covers: client publish is opt-in - with no flags an anonymous publish is
refused on every front end that publishes (native /ws over JSON and
MessagePack: error 103; /ws/raw: close 3503; long polling and HTTP
streaming sessions: error 103) and nothing reaches a subscriber, while the
server API still publishes; one namespace opened with
[namespace.NAME] publish = "anyone" publishes from every front end and the
others stay closed. WebSocket Origin is checked like SSE's: a cross-origin
handshake to /ws, /ws/raw and /ws/echo is refused with 403 and a JSON body
naming websocket.allowed_origins, a same-origin one or one without Origin
(not a browser) is accepted, and an origin listed in
websocket.allowed_origins is accepted. The start-up log has one
"permissive configuration" warning naming what is permissive, and none for
the defaults.
"""

import asyncio
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, HttpConn, RawWS, main  # noqa: E402
from herald_native import API_KEY, ApiTestCase, Native, check_error, close_reader, run  # noqa: E402
from emu_client import Poller  # noqa: E402

KEY_ARGS = ("--api-key", API_KEY)
SAME_ORIGIN = "http://127.0.0.1"   # RawWS sends "Host: 127.0.0.1"
WS_PATHS = ("/ws", "/ws/raw?channel=news", "/ws/echo")


def warnings(server):
    return [ln for ln in server.output().splitlines() if "permissive configuration" in ln]


class PublishCase(ApiTestCase):
    """Helpers: publish from each client front end and see what a subscriber gets."""

    async def native_publish(self, channel, encoding="json"):
        """The whole reply to one publish over /ws."""
        c = await Native.open(self.server, encoding=encoding)
        try:
            return await c.call("publish", {"channel": channel, "data": {"via": encoding}})
        finally:
            await close_reader(c)

    def raw_publish(self, channel):
        """Send one message on /ws/raw?channel=C: None when the server kept the
        connection open, else the close frame."""
        ws = RawWS.connect(self.server.addr, f"/ws/raw?channel={channel}")
        try:
            ws.send_text('{"via":"raw"}')
            try:
                return ws.expect_close(3503, timeout=0.5)
            except AssertionError:
                return None
        finally:
            ws.close_socket()

    def poll_publish(self, channel):
        p = Poller(self.server)
        try:
            p.open()
            p.command("connect")
            cid = p.command("publish", {"channel": channel, "data": {"via": "poll"}})
            return p.wait_reply(cid)
        finally:
            p.close()

    async def received(self, channel, action, settle=0.5):
        """The data of the publications a native subscriber of channel gets while action() runs."""
        sub = await Native.open(self.server)
        try:
            await sub.result("subscribe", {"channel": channel})
            await asyncio.get_event_loop().run_in_executor(None, action)
            await asyncio.sleep(settle * SLOW)
            return [p["pub"]["data"] for p in sub.drain() if "pub" in p]
        finally:
            await close_reader(sub)


class DefaultPublish(PublishCase):
    """No flags but the API key: client publish is off everywhere."""
    server_args = KEY_ARGS

    def test_native_publish_refused_103(self):
        for enc in ("json", "msgpack"):
            rep = run(self.native_publish("news", enc))
            self.assertIn("error", rep, rep)
            check_error(rep["error"], 103, f"anonymous publish over /ws ({enc})")

    def test_raw_publish_closed_3503(self):
        got = run(self.received("news", lambda: self.assertIsNotNone(self.raw_publish("news"),
                                                                     "/ws/raw publish was not refused")))
        self.assertEqual(got, [], "a refused raw publish reached a subscriber")

    def test_poll_publish_refused_103(self):
        rep = self.poll_publish("news")
        self.assertIn("error", rep, rep)
        check_error(rep["error"], 103, "anonymous publish over long polling")

    def test_nothing_reaches_subscribers_but_the_api(self):
        def attempts():
            self.raw_publish("news")
            self.poll_publish("news")
            run(self.native_publish("news"))
            self.api.publish("news", {"via": "api"})
        got = run(self.received("news", attempts))
        self.assertEqual(got, [{"via": "api"}])

    def test_no_permissive_warning(self):
        self.assertEqual(warnings(self.server), [])


class NamespaceOptIn(PublishCase):
    """[namespace.chat] publish = "anyone": chat:* publishes from every front end, the rest does not."""
    server_args = KEY_ARGS + ("--namespace.chat.publish", "anyone")

    def test_open_namespace_publishes_everywhere(self):
        def attempts():
            self.assertIsNone(self.raw_publish("chat:room"), "/ws/raw publish to chat:room was refused")
            rep = self.poll_publish("chat:room")
            self.assertIn("result", rep, rep)
            rep = run(self.native_publish("chat:room"))
            self.assertIn("result", rep, rep)
        got = run(self.received("chat:room", attempts))
        self.assertEqual(sorted(d["via"] for d in got), ["json", "poll", "raw"])

    def test_other_channels_stay_closed(self):
        check_error(run(self.native_publish("news")).get("error"), 103, "publish outside the open namespace")
        self.assertIsNotNone(self.raw_publish("news"))

    def test_warning_names_the_namespace(self):
        w = warnings(self.server)
        self.assertEqual(len(w), 1, w)
        self.assertIn("anonymous clients may publish in namespace chat", w[0])
        self.assertNotIn("outside a namespace", w[0])


class DefaultOrigin(HeraldTestCase):
    """websocket.allowed_origins empty: same origin or no Origin only, as SSE."""

    def test_cross_origin_refused_403(self):
        for path in WS_PATHS:
            resp = RawWS.connect(self.server.addr, path, headers={"Origin": "https://evil.example"},
                                 expect_status=403)
            self.assertEqual(resp.header("Content-Type"), "application/json", (path, resp))
            body = json.loads(resp.body)
            self.assertEqual(body["status"], 403, (path, body))
            self.assertIn("websocket.allowed_origins", body["error"], (path, body))

    def test_same_origin_and_no_origin_accepted(self):
        for path in WS_PATHS:
            for hdrs in ({"Origin": SAME_ORIGIN}, {"Origin": "HTTP://127.0.0.1:80"}, {}):
                RawWS.connect(self.server.addr, path, headers=hdrs).close_socket()

    def test_sse_refuses_the_same(self):
        with HttpConn(self.server.addr) as h:
            r = h.request("GET", "/sse?channel=news", {"Origin": "https://evil.example"})
        self.assertEqual(r.status, 403, r)


class AllowedOrigin(HeraldTestCase):
    server_args = ("--websocket.allowed-origins", "https://app.example.com")

    def test_listed_origin_accepted_others_refused(self):
        for path in WS_PATHS:
            RawWS.connect(self.server.addr, path, headers={"Origin": "https://app.example.com"}).close_socket()
            RawWS.connect(self.server.addr, path, headers={"Origin": "https://other.example.com"},
                          expect_status=403)
        self.assertEqual(warnings(self.server), [])


class PermissiveWarning(HeraldTestCase):
    server_args = ("--channels.publish", "anyone", "--websocket.allowed-origins", "*")

    def test_one_line_naming_each_permission(self):
        w = warnings(self.server)
        self.assertEqual(len(w), 1, w)
        self.assertIn("warn", w[0])
        self.assertIn("channels.publish", w[0])
        self.assertIn('websocket.allowed_origins = "*"', w[0].replace('\\"', '"'))  # a text line escapes quotes
        RawWS.connect(self.server.addr, "/ws", headers={"Origin": "https://any.example"}).close_socket()

    def test_subscribers_rule_with_anonymous_subscribe_warns(self):
        with Herald("--channels.publish", "subscribers") as h:
            w = warnings(h)
        self.assertEqual(len(w), 1, w)


if __name__ == "__main__":
    main()
