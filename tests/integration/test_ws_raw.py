#!/usr/bin/env python3
"""Raw WebSocket mode (/ws/raw?channel=C) against the real herald binary.

Written from docs/protocol.md ("Raw WebSocket mode") and docs/api.md. Clients:
Debian's python3-websockets 10.4 (asyncio API), raw sockets from
herald_testlib (RawWS: to see the frames themselves, and a slow reader with a
tiny receive buffer), the native protocol (herald_native.Native) and the
server HTTP API.

Covers: each publication is one text frame holding exactly its data (any JSON
value), in order, exactly once, on 20 connections spread over both workers;
several channels and patterns on one connection (overlapping subscriptions
deliver once); a channel given twice; percent-decoding ('%3A', '+' literal);
permessage-deflate (compressed frames, one encoding shared); client publish
(reaches native /ws subscribers and comes back to the publisher, compacted);
refusals before the upgrade (400 / 403 / 503 with the JSON error body; the
handshake's own checks first); close 3501 (not JSON, binary, too many
values), 3503 (publish not allowed), 1009 (publication too large); the
client id in X-Herald-Client and the server API's disconnect / unsubscribe;
presence and join/leave of raw clients; a slow raw consumer closed with 3008
while the others get everything.
"""

import asyncio
import json
import os
import re
import socket
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, SLOW,  # noqa: E402
                            HttpConn, RawWS, WSClosed, main, raise_nofile_limit)
from herald_native import API_KEY, Api, ApiTestCase, Native, close_reader, run, small_rcvbuf_socket  # noqa: E402

import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatusCode  # noqa: E402

KEY_ARGS = ("--api-key", API_KEY)

_seq = [0]


def chan(prefix="raw"):
    """A channel name unique within this test process."""
    _seq[0] += 1
    return f"{prefix}:{os.getpid()}-{_seq[0]}"


def raw_path(*channels, extra=""):
    q = "&".join("channel=" + urllib.parse.quote(c, safe="") for c in channels)
    return "/ws/raw" + ("?" + q if q else "") + extra


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


class Raw:
    """A raw-mode client over python3-websockets: every message is kept, in order."""

    def __init__(self, ws):
        self.ws = ws
        self.msgs = asyncio.Queue()
        self.count = 0
        self.handler = None          # when set: f(text) for every message (fast path)
        self.closed = asyncio.Event()
        self.reader_error = None
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, server, *channels, path=None, compression=None):
        ws = await websockets.connect(server.ws_url(path or raw_path(*channels)), compression=compression,
                                      max_size=None, ping_interval=None, open_timeout=10 * SLOW,
                                      close_timeout=3, max_queue=None)
        return cls(ws)

    @property
    def client_id(self):
        return self.ws.response_headers.get("X-Herald-Client")

    async def _read(self):
        try:
            async for msg in self.ws:
                self.count += 1
                if not isinstance(msg, str):
                    raise AssertionError(f"raw mode sent a binary message: {msg[:100]!r}")
                if self.handler is not None:
                    self.handler(msg)
                else:
                    self.msgs.put_nowait(msg)
        except ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported to the waiting test
            self.reader_error = e
        finally:
            self.closed.set()

    async def recv(self, timeout=5):
        try:
            return await asyncio.wait_for(self.msgs.get(), timeout * SLOW)
        except asyncio.TimeoutError:
            raise AssertionError(f"no message within {timeout * SLOW}s (close code {self.ws.close_code}, "
                                 f"reader error {self.reader_error!r})")

    async def recv_n(self, n, timeout=10):
        return [await self.recv(timeout) for _ in range(n)]

    async def quiet(self, seconds=0.3):
        await asyncio.sleep(seconds * SLOW)
        items = []
        while not self.msgs.empty():
            items.append(self.msgs.get_nowait())
        if items:
            raise AssertionError(f"unexpected messages: {items[:5]}")

    async def closed_with(self, timeout=5):
        await asyncio.wait_for(self.closed.wait(), timeout * SLOW)
        return self.ws.close_code, self.ws.close_reason

    close = close_reader


class Base(ApiTestCase):
    server_args = KEY_ARGS

    def raw(self, *channels, **kw):
        return Raw.open(self.server, *channels, **kw)

    def refused(self, path, status, headers=None):
        """A handshake on `path` answered `status` with the documented JSON error body; returns the message."""
        resp = RawWS.connect(self.server.addr, path, headers=headers, expect_status=status)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        body = resp.json()
        self.assertEqual(set(body), {"error", "status"}, body)
        self.assertEqual(body["status"], status, body)
        self.assertIsInstance(body["error"], str)
        self.assertTrue(body["error"])
        return body["error"]

    def presence_ids(self, channel):
        return set(self.api.call("presence", {"channel": channel})["clients"])

    def wait_presence(self, channel, want, present=True, timeout=5):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            ids = self.presence_ids(channel)
            if (want in ids) == present:
                return ids
            time.sleep(0.02)
        raise AssertionError(f"{want} {'not ' if present else ''}in presence of {channel}: {ids}")


class TestRawMode(Base):
    server_args = KEY_ARGS + ("--channels.history-size", "100", "--channels.presence", "true",
                              "--channels.join-leave", "false", "--channels.publish", "anyone",
                              "--channels.max-subscriptions", "8", "--channels.max-publication-size", "1KiB",
                              "--namespace.ticker.allow-publish", "false",
                              "--namespace.room.join-leave", "true",
                              "--namespace.quiet.presence", "false",
                              "--namespace.members.allow-anonymous", "false",
                              "--namespace.full.max-subscribers", "1",
                              # room for the 2 MiB message of too many JSON values (default limit: 1 MiB)
                              "--websocket.max-message-size", "4MiB")

    # -- pushes --------------------------------------------------------------------

    def test_publications_arrive_as_bare_json_text_frames(self):
        values = [{"text": "hi", "n": 1}, [1, 2, {"a": None}], "a string", 42, -7, 0.1, 1.5e300, True, False,
                  None, {}, [], {"z": 1, "a": 2, "nested": {"k": [1, "é", "\u2603"]}}, "quote \" and \\ and \n"]

        async def go():
            ch = chan()
            c = await self.raw(ch)
            for v in values:
                self.api.publish(ch, v)
            got = await c.recv_n(len(values))
            # exactly the data, compact, member order kept, one message each
            self.assertEqual(got, [compact(v) for v in values])
            await c.quiet(0.1)
            # the frames themselves: one unfragmented, uncompressed text frame per publication
            ws = RawWS.connect(self.server.addr, raw_path(ch))
            try:
                self.api.publish(ch, {"frame": 1})
                f = ws.recv_frame()
                self.assertEqual((f.fin, f.rsv1, f.opcode, f.masked, f.payload), (True, False, OP_TEXT, False,
                                                                                  b'{"frame":1}'))
            finally:
                ws.close_socket()
            await c.close()
        run(go())

    def test_client_id_header_on_the_101(self):
        async def go():
            ch = chan()
            a, b = await self.raw(ch), await self.raw(ch)
            self.assertRegex(a.client_id or "", r"^[0-9a-f]{32}$", dict(a.ws.response_headers))
            self.assertNotEqual(a.client_id, b.client_id)
            await a.close()
            await b.close()
        run(go())

    def test_20_clients_200_publications_exactly_once_in_order_on_both_workers(self):
        n_clients, n_pubs = 20, 200

        async def go():
            ch = chan("fan")
            clients = await asyncio.gather(*(self.raw(ch) for _ in range(n_clients)))
            seen = [[] for _ in clients]
            for i, c in enumerate(clients):
                c.handler = seen[i].append
            loop = asyncio.get_event_loop()
            api = Api(self.server)
            try:
                for k in range(0, n_pubs, 20):
                    await loop.run_in_executor(None, api.batch_publish, ch,
                                               [{"i": i} for i in range(k, k + 20)])
            finally:
                api.close()
            want = [compact({"i": i}) for i in range(n_pubs)]
            deadline = time.monotonic() + 30 * SLOW
            while any(len(s) < n_pubs for s in seen) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1 * SLOW)  # anything extra would be a duplicate
            for i, s in enumerate(seen):
                self.assertEqual(len(s), n_pubs, f"client {i}: {len(s)} messages of {n_pubs}")
                self.assertEqual(s, want, f"client {i}: first difference at "
                                          f"{next((j for j, (x, y) in enumerate(zip(s, want)) if x != y), None)}")
            info = self.api.call("info", {})["nodes"][0]
            self.assertGreaterEqual(info["websockets"], n_clients, info)
            for c in clients:
                await c.close()
        run(go(), timeout=120)

    def test_several_channels_and_patterns_on_one_connection(self):
        async def go():
            a, b, p = chan("multi"), chan("multi"), f"pat{os.getpid()}"
            c = await self.raw(a, b, f"{p}.>", f"{p}.*.usd")
            self.api.publish(a, "a1")
            self.api.publish(b, "b1")
            self.api.publish(f"{p}.btc", "p1")
            self.api.publish(f"{p}.btc.usd", "p2")      # both patterns match: delivered once
            self.api.publish(chan("other"), "never")
            self.api.publish(p, "never")               # '>' needs one more segment
            self.api.publish(a, "a2")
            got = await c.recv_n(5)
            self.assertEqual(got, ['"a1"', '"b1"', '"p1"', '"p2"', '"a2"'])
            await c.quiet(0.2)
            await c.close()
            # an exact channel also covered by a pattern: once
            x = f"ovl{os.getpid()}.x"
            d = await self.raw(f"ovl{os.getpid()}.>", x, f"ovl{os.getpid()}.*")
            for i in range(3):
                self.api.publish(x, i)
                self.api.publish(f"ovl{os.getpid()}.y", 10 + i)
            self.assertEqual(await d.recv_n(6), ["0", "10", "1", "11", "2", "12"])
            await d.quiet(0.2)
            await d.close()
        run(go())

    def test_channel_given_twice_counts_once(self):
        async def go():
            ch = chan()
            c = await self.raw(ch, ch)
            self.api.publish(ch, 1)
            self.assertEqual(await c.recv(), "1")
            await c.quiet(0.2)
            await c.ws.send("2")  # one channel: publishing is allowed
            self.assertEqual(await c.recv(), "2")
            await c.close()
        run(go())

    def test_percent_decoding_and_literal_plus(self):
        async def go():
            name = f"pct:{os.getpid()}+x@y=z,1"
            c = await Raw.open(self.server, path="/ws/raw?other=1&channel=" + name.replace(":", "%3a")
                               .replace("@", "%40") + "&unused")
            self.api.publish(name, "ok")
            self.assertEqual(await c.recv(), '"ok"')
            await c.close()
        run(go())

    def test_permessage_deflate(self):
        big = {"pad": "x" * 600, "list": list(range(50))}  # under channels.max_publication_size (1 KiB)

        async def go():
            ch = chan("zip")
            c = await self.raw(ch, compression="deflate")
            self.assertTrue(any("permessage-deflate" in str(e.name) for e in c.ws.extensions), c.ws.extensions)
            ws = RawWS.connect(self.server.addr, raw_path(ch), extensions="permessage-deflate")
            self.assertTrue(ws.deflate)
            try:
                for i in range(5):
                    self.api.publish(ch, {"small": i})
                    self.api.publish(ch, dict(big, i=i))
                got = await c.recv_n(10)
                want = []
                for i in range(5):
                    want += [compact({"small": i}), compact(dict(big, i=i))]
                self.assertEqual(got, want)
                sizes = []
                for w in want:
                    f = ws.recv_frame()
                    self.assertEqual(f.opcode, OP_TEXT)
                    # compressed when large (websocket.deflate_min_size), plain when small
                    self.assertEqual(f.rsv1, len(w) >= 64, f)
                    sizes.append(len(f.payload))
                self.assertLess(max(sizes), 250, "large publications were not compressed")
                # the client may send compressed messages too
                await c.ws.send(compact(big))
                self.assertEqual(await c.recv(), compact(big))
            finally:
                ws.close_socket()
            await c.close()
        run(go())

    # -- client publish -------------------------------------------------------------------

    def test_client_publish_reaches_native_subscriber_and_comes_back(self):
        async def go():
            ch = chan("pub")
            n = await Native.open(self.server)
            await n.result("subscribe", {"channel": ch})
            r1, r2 = await self.raw(ch), await self.raw(ch)
            await r1.ws.send('  {"text": "hi",  "n": 0.1, "big": 12345678901234567} ')
            want = {"text": "hi", "n": 0.1, "big": 12345678901234567}
            push = await n.push()
            self.assertEqual(push["pub"]["channel"], ch)
            self.assertEqual(push["pub"]["data"], want)
            # every raw subscriber, the publisher included, gets it compacted
            self.assertEqual(await r1.recv(), compact(want))
            self.assertEqual(await r2.recv(), compact(want))
            for text, back in (("[1, 2 ,3]", "[1,2,3]"), ('"s"', '"s"'), ("42", "42"), ("null", "null"),
                               ("1.0", "1.0"), ("1e2", "100.0")):
                await r2.ws.send(text)
                self.assertEqual(await r1.recv(), back, text)
                self.assertEqual(await r2.recv(), back, text)
                self.assertEqual((await n.push())["pub"]["data"], json.loads(back))
            # it is a real publication: in history with an offset
            hist = self.api.call("history", {"channel": ch})
            self.assertEqual(len(hist["publications"]), 7)
            self.assertEqual(hist["publications"][0]["data"], want)
            # at most channels.max_publication_size (1 KiB), measured on the compacted data
            exact = '"' + "x" * 1022 + '"'
            await r1.ws.send("   " + exact + "   ")
            self.assertEqual(await r2.recv(), exact)
            await r1.ws.send('"' + "x" * 1023 + '"')
            self.assertEqual(await r1.closed_with(), (1009, "publication is 1025 bytes, the limit is 1024 (channels.max_publication_size)"))
            await r2.quiet(0.2)
            for c in (n, r2):
                await c.close()
        run(go())

    def test_compact_messages_relayed_as_sent_others_compacted(self):
        """Messages already compact are published unparsed (hr_json_is_canonical): what a subscriber
        gets is the same compact form either way, forms that compaction changes included."""
        async def go():
            ch = chan("canon")
            r1, r2 = await self.raw(ch), await self.raw(ch)
            for text, back in (('{"t":1,"s":"a\\"b\\n"}', '{"t":1,"s":"a\\"b\\n"}'),
                               ("9223372036854775807", "9223372036854775807"), ("-0", "0"),
                               ('"\\u0041\\/"', '"A/"'), ('{"a":1,"a":2}', '{"a":2}'),
                               ('"\\u00e9"', '"\u00e9"'), ('"\\u0001"', '"\\u0001"'),
                               ("[" * 20 + "1" + "]" * 20, "[" * 20 + "1" + "]" * 20)):
                await r1.ws.send(text)
                self.assertEqual(await r2.recv(), back, text)
                self.assertEqual(await r1.recv(), back, text)
            await r1.ws.send("9223372036854775808")
            self.assertEqual((await r1.closed_with())[0], 3501)
            await r2.close()
        run(go())

    def test_not_json_closes_3501(self):
        async def go():
            ch = chan()
            for msg in ("not json", '{"a":1} x', "{", "", "18446744073709551616", "[1e400]", b"\x01\x02",
                        b'{"binary": true}'):
                with self.subTest(msg=msg):
                    c = await self.raw(ch)
                    await c.ws.send(msg)
                    code, reason = await c.closed_with()
                    self.assertEqual(code, 3501, (msg, code, reason))
                    self.assertIn("binary" if isinstance(msg, bytes) else "not JSON", reason)
                    await c.close()
            # too many values in one message (1,048,576 at most)
            c = await self.raw(ch)
            await c.ws.send("[" + "0," * (1 << 20) + "0]")
            self.assertEqual((await c.closed_with())[0], 3501)
            await c.close()
        run(go())

    def test_publish_refused_3503(self):
        async def go():
            cases = [
                ((chan(), chan()), "exactly one channel"),
                ((f"p{os.getpid()}.>",), "pattern"),
                ((chan("ticker"),), "may not publish"),
            ]
            for chans, why in cases:
                with self.subTest(chans=chans):
                    c = await self.raw(*chans)
                    await c.ws.send('{"a":1}')
                    code, reason = await c.closed_with()
                    self.assertEqual(code, 3503, (code, reason))
                    self.assertIn(why, reason)
                    await c.close()
            # the backend still publishes to ticker:*, and raw clients receive it
            t = chan("ticker")
            c = await self.raw(t)
            self.api.publish(t, {"price": 1})
            self.assertEqual(await c.recv(), '{"price":1}')
            await c.close()
        run(go())

    # -- refusals before the upgrade ----------------------------------------------------

    def test_bad_or_missing_channel_400_before_upgrade(self):
        ok = chan()
        cases = [
            ("/ws/raw", "missing channel"),
            ("/ws/raw?", "missing channel"),
            ("/ws/raw?chan=x", "missing channel"),
            ("/ws/raw?channel=", "invalid channel"),
            ("/ws/raw?channel", "invalid channel"),
            ("/ws/raw?channel=a%20b", "invalid channel"),
            ("/ws/raw?channel=a..b", "invalid channel"),
            ("/ws/raw?channel=a.*x", "invalid channel"),
            ("/ws/raw?channel=a%00b", "invalid channel"),
            ("/ws/raw?channel=" + "x" * 256, "invalid channel"),  # channels.max_channel_length 255
            ("/ws/raw?channel=a%zz", "percent-escape"),
            ("/ws/raw?channel=a%2", "percent-escape"),
            (raw_path(ok, "bad name"), "invalid channel"),
            (raw_path(*[chan() for _ in range(9)]), "too many channels"),  # channels.max_subscriptions 8
        ]
        for path, why in cases:
            with self.subTest(path=path[:80]):
                self.assertIn(why, self.refused(path, 400))
        # nothing of the refused requests stayed subscribed (in presence) ...
        self.assertEqual(self.api.call("presence", {"channel": ok})["clients"], {})
        # ... and 8 channels are fine
        c = RawWS.connect(self.server.addr, raw_path(*[chan() for _ in range(7)], ok))
        try:
            self.assertEqual(len(self.wait_presence(ok, c.response.header("X-Herald-Client"))), 1)
        finally:
            c.close_socket()

    def test_user_limited_and_members_only_403(self):
        for path, why in ((raw_path("#alice"), "user-limited"), (raw_path("dm:#alice,bob"), "user-limited"),
                          (raw_path(chan(), "dm:#alice"), "user-limited"),
                          (raw_path(chan("members")), "anonymous")):
            with self.subTest(path=path):
                self.assertIn(why, self.refused(path, 403))

    def test_max_subscribers_503_then_free_again(self):
        async def go():
            ch = chan("full")
            a = await self.raw(ch)
            msg = self.refused(raw_path(ch), 503)
            self.assertIn("max_subscribers", msg)
            # the refused request released what it took: once a leaves, there is room again
            await a.close()
            deadline = time.monotonic() + 5 * SLOW
            while True:
                try:
                    b = await self.raw(ch)
                    break
                except InvalidStatusCode as e:
                    self.assertEqual(e.status_code, 503)
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.02)
            await b.close()
        run(go())

    def test_handshake_checks_come_first(self):
        conn = HttpConn(self.server.addr)
        try:
            resp = conn.request("GET", "/ws/raw?channel=bad%20name")
            self.assertEqual(resp.status, 426, resp)
            resp = conn.request("POST", "/ws/raw?channel=ok", body=b"")
            self.assertEqual(resp.status, 405, resp)
        finally:
            conn.close()

    # -- server API, presence ----------------------------------------------------------

    def test_api_disconnect_and_unsubscribe(self):
        async def go():
            a, b = chan("srv"), chan("srv")
            c = await self.raw(a, b)
            cid = c.client_id
            self.assertEqual(self.api.call("unsubscribe", {"channel": a, "client": cid}), {})
            await asyncio.sleep(0.1 * SLOW)
            self.api.publish(a, "gone")
            self.api.publish(b, "kept")
            self.assertEqual(await c.recv(), '"kept"')
            await c.quiet(0.2)
            # the last channel removed: close 1000 with the reason
            self.api.call("unsubscribe", {"channel": b, "client": cid, "reason": "channel archived"})
            self.assertEqual(await c.closed_with(), (1000, "channel archived"))
            await c.close()
            # disconnect: close with the API's code and reason
            d = await self.raw(a)
            e = await self.raw(a)
            self.api.call("disconnect", {"client": d.client_id, "code": 3005, "reason": "maintenance"})
            self.assertEqual(await d.closed_with(), (3005, "maintenance"))
            self.api.call("disconnect", {"client": e.client_id})
            self.assertEqual(await e.closed_with(), (3000, "disconnected by the server"))
            for x in (d, e):
                await x.close()
        run(go())

    def test_presence_shows_raw_clients(self):
        async def go():
            ch, q, pat = chan(), chan("quiet"), f"pres{os.getpid()}.>"
            c = await self.raw(ch, q, pat)
            ids = self.wait_presence(ch, c.client_id)
            self.assertEqual(self.api.call("presence", {"channel": ch})["clients"][c.client_id],
                             {"client": c.client_id, "user": ""})
            self.assertIn(c.client_id, ids)
            resp = self.api.raw("/api/presence", json.dumps({"channel": q}))
            self.assertNotEqual(resp.status, 200, "presence is off in quiet:*")
            await c.close()
            self.wait_presence(ch, c.client_id, present=False)
        run(go())

    def test_join_and_leave_of_raw_clients_but_no_join_pushes_to_them(self):
        async def go():
            room = chan("room")
            n = await Native.open(self.server)
            await n.result("subscribe", {"channel": room})
            self.assertIn("join", await n.push())  # its own join
            r = await self.raw(room)
            j = await n.push()
            self.assertEqual(j, {"join": {"channel": room, "info": {"client": r.client_id, "user": ""}}})
            m = await Native.open(self.server)
            await m.result("subscribe", {"channel": room})
            self.assertIn("join", await n.push())
            await r.quiet(0.3)  # raw clients get publications only
            self.api.publish(room, "x")
            self.assertEqual(await r.recv(), '"x"')
            await r.close()
            pushes = []
            deadline = time.monotonic() + 5 * SLOW
            while time.monotonic() < deadline:
                p = await n.push()
                pushes.append(p)
                if "leave" in p:
                    break
            self.assertEqual(pushes[-1], {"leave": {"channel": room, "info": {"client": r.client_id, "user": ""}}})
            for c in (n, m):
                await c.close()
        run(go())


class TestUnknownNamespaces(Base):
    server_args = KEY_ARGS + ("--channels.allow-unknown-namespaces", "false", "--namespace.news.history-size", "5")

    def test_unknown_namespace_400(self):
        self.assertIn("namespace", self.refused(raw_path("nope:x"), 400))
        self.assertIn("namespace", self.refused(raw_path("news:a", "nope:x"), 400))
        c = RawWS.connect(self.server.addr, raw_path("news:a", "plain"))
        c.close_socket()


class TestPublishNone(Base):
    """Issue 13's report, literally: with --channels.publish none the native
    protocol answers 103, and a raw client is refused too (it used to
    publish, and every subscriber received it)."""
    server_args = KEY_ARGS + ("--channels.publish", "none")

    def test_raw_publish_refused_like_native(self):
        async def go():
            ch = chan("news")
            n = await Native.open(self.server)
            await n.result("subscribe", {"channel": ch})
            err = await n.error("publish", {"channel": ch, "data": {"a": 1}}, code=103)
            self.assertEqual(err["detail"], "clients may not publish here")
            c = await self.raw(ch)
            await c.ws.send('{"a":1}')
            self.assertEqual(await c.closed_with(), (3503, "clients may not publish here"))
            await n.quiet(0.3)
            self.assertEqual(self.api.call("history", {"channel": ch})["publications"], [])
            await c.close()
            await n.close()
        run(go())


class TestOriginAllowList(Base):
    server_args = KEY_ARGS + ("--websocket.allowed-origins", "https://good.example")

    def test_origin_checked_like_ws(self):
        self.refused(raw_path("x"), 403, headers={"Origin": "https://evil.example"})
        c = RawWS.connect(self.server.addr, raw_path("x"), headers={"Origin": "https://good.example"})
        c.close_socket()


class TestSlowRawConsumer(Base):
    server_args = KEY_ARGS + ("--websocket.max-queued-bytes", "64KiB", "--websocket.close-timeout", "60s",
                              "--channels.max-publication-size", "64KiB", "--http.max-body-size", "4MiB")
    N_READERS = 10
    PUB_SIZE = 8000
    N_PUBS = 400
    WINDOW = 12

    def test_slow_raw_consumer_closed_3008_others_get_everything(self):
        raise_nofile_limit()
        ch = chan("slow")
        pad = "p" * self.PUB_SIZE
        seq_re = re.compile(r'"seq":(\d+)')

        async def go():
            readers = await asyncio.gather(*(self.raw(ch) for _ in range(self.N_READERS)))
            seen = [[] for _ in readers]
            for i, r in enumerate(readers):
                r.handler = lambda m, s=seen[i]: s.append(int(seq_re.search(m).group(1)))
            # the slow one: tiny receive buffer, never reads
            sock = small_rcvbuf_socket(self.server.addr, 4096)
            req, _ = RawWS.handshake_request(raw_path(ch))
            conn = HttpConn(self.server.addr, sock=sock)
            conn.send(req)
            resp = conn.read_response("GET")
            self.assertEqual(resp.status, 101, resp)
            slow = RawWS(sock, resp, bytes(conn.buf))

            loop = asyncio.get_event_loop()
            api = Api(self.server)
            published = 0
            try:
                while published < self.N_PUBS:
                    datas = [{"seq": published + i, "pad": pad} for i in range(4)]
                    await loop.run_in_executor(None, api.batch_publish, ch, datas)
                    published += 4
                    deadline = time.monotonic() + 30 * SLOW
                    while min(len(s) for s in seen) < published - self.WINDOW:
                        if time.monotonic() > deadline:
                            raise AssertionError(f"readers stalled: {[len(s) for s in seen]} of {published}, "
                                                 f"closed: {[r.ws.close_code for r in readers if r.closed.is_set()]}")
                        await asyncio.sleep(0.002)
                deadline = time.monotonic() + 30 * SLOW
                while min(len(s) for s in seen) < published and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            finally:
                api.close()
            for i, (r, s) in enumerate(zip(readers, seen)):
                self.assertFalse(r.closed.is_set(), f"reader {i} closed: {r.ws.close_code} {r.ws.close_reason!r}")
                self.assertEqual(s, list(range(published)), f"reader {i}")
            got, close = [], None
            try:
                while True:
                    f = slow.recv_frame(timeout=10)
                    if f.opcode == OP_CLOSE:
                        close = f
                        break
                    if f.opcode == OP_TEXT:
                        got.append(int(seq_re.search(f.payload.decode()).group(1)))
                    elif f.opcode not in (OP_PING, OP_PONG, 0):
                        raise AssertionError(f"unexpected frame {f!r}")
            except (WSClosed, socket.timeout, TimeoutError) as e:
                raise AssertionError(f"slow consumer: no close frame after {len(got)} messages: {e!r}")
            finally:
                slow.close_socket()
            self.assertEqual(close.close_code(), 3008, close.close_reason())
            self.assertLess(len(got), published)
            self.assertEqual(got, list(range(len(got))), "messages before the 3008 close: gap or disorder")
            for r in readers:
                await r.close()
        run(go(), timeout=180)


if __name__ == "__main__":
    main()
