#!/usr/bin/env python3
"""Channels over the native protocol (/ws, JSON) against the real herald binary.

Written from the user documentation only (docs/protocol.md, docs/api.md,
docs/config.md): every assertion is a documented behaviour. Clients: Debian's
python3-websockets 10.4 (asyncio API) and raw sockets from herald_testlib;
publications also come through the server HTTP API (/api).

Covers: connect first (114), connect result, subscribe / publish / pub push
format, fan-out to 24 clients on both workers (every publication exactly once,
offsets consecutive), several commands per frame, malformed frames and too many
commands per frame (close 3501), history (limit / reverse / since) over WS and
API, recovery (100 missed, refused when history was trimmed / expired / the
epoch is wrong, recovery while publishing), presence and presence_stats,
join / leave pushes, wildcard subscriptions, unsubscribe, the documented error
codes and [channels] limits, a slow consumer (close 3008) next to 200 readers
that lose nothing, and graceful shutdown (close 1001).
"""

import asyncio
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, SANITIZE, SLOW, Herald,  # noqa: E402
                            HttpConn, RawWS, WSClosed, dump_output, main,
                            raise_nofile_limit)
from herald_native import (API_KEY, Api, ApiTestCase, Native, check_error, percentile,  # noqa: E402
                           run, small_rcvbuf_socket)

# the API key, and client publish (opt-in, docs/config.md) on every channel these tests publish to
KEY_ARGS = ("--api-key", API_KEY, "--channels.publish", "anyone")

_seq = [0]


def chan(prefix="t"):
    """A channel name unique within this test process."""
    _seq[0] += 1
    return f"{prefix}:{os.getpid()}-{_seq[0]}"


def frame(*objs):
    return "\n".join(json.dumps(o, separators=(",", ":")) for o in objs)


def raw_native(server, rcvbuf=None):
    """A RawWS on /ws (optionally with a small receive buffer)."""
    if rcvbuf is None:
        return server.ws("/ws")
    sock = small_rcvbuf_socket(server.addr, rcvbuf)
    req, key = RawWS.handshake_request("/ws")
    conn = HttpConn(server.addr, sock=sock)
    conn.send(req)
    resp = conn.read_response("GET")
    assert resp.status == 101, f"handshake on /ws: {resp!r}"
    return RawWS(sock, resp, bytes(conn.buf))


def raw_lines(ws, n, timeout=10):
    """Read text messages from a RawWS until n JSON lines arrived; return them parsed."""
    out = []
    while len(out) < n:
        op, data = ws.recv_message(timeout)
        assert op == OP_TEXT, f"expected text, got opcode {op}"
        out += [json.loads(ln) for ln in data.decode().split("\n") if ln.strip()]
    return out


class Base(ApiTestCase):
    server_args = KEY_ARGS

    def open(self, **kw):
        return Native.open(self.server, **kw)


# ===========================================================================
# The default-ish server: history kept, presence on, join/leave off
# ===========================================================================


class TestNativeProtocol(Base):
    server_args = KEY_ARGS + ("--channels.history-size", "1000", "--channels.history-ttl", "10m",
                              "--channels.presence", "true", "--channels.join-leave", "false",
                              "--channels.allow-publish", "true", "--channels.allow-anonymous", "true")

    # -- connect -----------------------------------------------------------------

    def test_connect_is_required_first(self):
        async def go():
            c = await self.open(connect=False)
            ch = chan()
            for method, params in (("subscribe", {"channel": ch}), ("publish", {"channel": ch, "data": 1}),
                                   ("history", {"channel": ch}), ("presence", {"channel": ch}),
                                   ("presence_stats", {"channel": ch}), ("unsubscribe", {"channel": ch}),
                                   ("ping", {})):
                await c.error(method, params, code=114)
            # ... and connect still works afterwards
            res = await c.result("connect", {})
            self.assertIsInstance(res.get("client"), str)
            await c.result("subscribe", {"channel": ch})
            await c.close()
        run(go())

    def test_connect_result_fields(self):
        async def go():
            a = await self.open(name="herald-tests", version="1.2.3")
            b = await self.open(unknown_field_is_ignored={"x": 1})
            for c in (a, b):
                r = c.connect_result
                self.assertIsInstance(r.get("client"), str, r)
                self.assertTrue(r["client"], r)
                self.assertIsInstance(r.get("version"), str, r)
                self.assertRegex(r["version"], r"^\d+\.\d+\.\d+", r)
                self.assertIs(type(r.get("ping")), int, r)
                self.assertGreater(r["ping"], 0, r)
            self.assertNotEqual(a.client_id, b.client_id, "two connections got the same client id")
            # the server version is the one the API reports
            info = self.api.call("info", {})
            self.assertEqual(info["nodes"][0]["version"], a.connect_result["version"])
            await a.close()
            await b.close()
        run(go())

    def test_connect_with_token_is_refused_101(self):
        async def go():
            c = await self.open(connect=False)
            await c.error("connect", {"token": "eyJhbGciOiJIUzI1NiJ9.e30.x"}, code=101)
            await c.close()
        run(go())

    def test_connect_with_subs(self):
        async def go():
            good1, good2 = chan("news"), chan("chat")
            p = self.api.publish(good1, {"before": True})
            c = await self.open(subs=[good1, good2, "bad name"])
            subs = c.connect_result.get("subs")
            self.assertIsInstance(subs, dict, c.connect_result)
            self.assertEqual(set(subs), {good1, good2, "bad name"}, subs)
            for name in (good1, good2):
                s = subs[name]
                self.assertEqual(s.get("channel"), name, s)
                self.assertIsInstance(s.get("epoch"), str, s)
                self.assertIs(type(s.get("offset")), int, s)
                self.assertIs(s.get("recoverable"), True, s)
            self.assertEqual((subs[good1]["epoch"], subs[good1]["offset"]), (p["epoch"], p["offset"]))
            bad = subs["bad name"]
            self.assertEqual(bad.get("id"), 0, f"a failed subs entry is documented as {{'id':0,'error':...}}: {bad}")
            check_error(bad.get("error"), 107, "connect subs ['bad name']")
            # the subscriptions are live
            q = self.api.publish(good2, "hello")
            pub = (await c.pubs(1, channel=good2))[0]
            self.assertEqual(pub, {"channel": good2, "offset": q["offset"], "data": "hello"})
            await c.close()
        run(go())

    def test_connect_subs_as_object(self):
        async def go():
            ch = chan()
            c = await self.open(subs={ch: {}})
            self.assertIn(ch, c.connect_result.get("subs", {}), c.connect_result)
            self.api.publish(ch, 1)
            await c.pubs(1, channel=ch)
            await c.close()
        run(go())

    # -- subscribe / publish -----------------------------------------------------

    def test_subscribe_publish_round_trip(self):
        async def go():
            ch = chan("chat")
            a = await self.open()
            b = await self.open()
            sub = await a.result("subscribe", {"channel": ch})
            self.assertEqual(set(sub) - {"recovered", "publications"}, {"channel", "epoch", "offset", "recoverable"}, sub)
            self.assertEqual(sub["channel"], ch)
            self.assertIsInstance(sub["epoch"], str)
            self.assertTrue(sub["epoch"])
            self.assertEqual(sub["offset"], 0, "a channel nobody published to starts at offset 0")
            self.assertIs(sub["recoverable"], True)
            res = await b.result("publish", {"channel": ch, "data": {"text": "hi"}})
            self.assertEqual(res, {"offset": 1, "epoch": sub["epoch"]})
            push = await a.push()
            self.assertEqual(push, {"pub": {"channel": ch, "offset": 1, "data": {"text": "hi"}}})
            # b is not subscribed: it gets nothing
            await b.quiet(0.3)
            # the publisher gets its own publication when subscribed
            await b.result("subscribe", {"channel": ch})
            res2 = await b.result("publish", {"channel": ch, "data": [1, 2]})
            self.assertEqual(res2, {"offset": 2, "epoch": sub["epoch"]})
            for c in (a, b):
                self.assertEqual(await c.push(), {"pub": {"channel": ch, "offset": 2, "data": [1, 2]}})
            await a.quiet(0.2)
            await a.close()
            await b.close()
        run(go())

    def test_pub_push_format_exactly_as_documented(self):
        values = [{"text": "hi"}, "a string", 0, -17, 3.5, True, False, None, [], {}, [1, "two", {"3": [4]}],
                  {"nested": {"deep": [{"x": "\u00e9\u20ac\U0001F600"}]}}, "quote \" back\\slash \n newline"]

        async def go():
            ch = chan("fmt")
            a = await self.open()
            await a.result("subscribe", {"channel": ch})
            offsets = []
            for v in values:
                offsets.append(self.api.publish(ch, v)["offset"])
            got = []
            for _ in values:
                got.append(await a.push())
            for v, off, p in zip(values, offsets, got):
                self.assertEqual(p, {"pub": {"channel": ch, "offset": off, "data": v}})
                self.assertEqual(set(p), {"pub"})
                self.assertEqual(set(p["pub"]), {"channel", "offset", "data"}, p)
            await a.close()
        run(go())

    def test_api_publish_reaches_ws_subscribers(self):
        async def go():
            ch = chan("news")
            clients = [await self.open() for _ in range(4)]
            for c in clients:
                await c.result("subscribe", {"channel": ch})
            res = self.api.publish(ch, {"t": 1})
            self.assertEqual(res["offset"], 1)
            for c in clients:
                self.assertEqual(await c.push(), {"pub": {"channel": ch, "offset": 1, "data": {"t": 1}}})
            for c in clients:
                await c.close()
        run(go())

    def test_every_subscriber_on_both_workers_gets_each_publication_once_in_order(self):
        n_clients, n_ws, n_api = 24, 150, 150

        async def go():
            ch = chan("fan")
            clients = await asyncio.gather(*(self.open() for _ in range(n_clients)))
            starts = set()
            for c in clients:
                starts.add((await c.result("subscribe", {"channel": ch}))["offset"])
            self.assertEqual(starts, {0})
            publisher = clients[0]

            # WebSocket publishes (pipelined in frames of 10) and API publishes, interleaved
            def api_pub():
                api = Api(self.server)
                try:
                    return [api.publish(ch, {"via": "api", "i": i})["offset"] for i in range(n_api)]
                finally:
                    api.close()
            api_task = asyncio.get_event_loop().run_in_executor(None, api_pub)
            ws_offsets = []
            for k in range(0, n_ws, 10):
                sent = await publisher.send_frame([("publish", {"channel": ch, "data": {"via": "ws", "i": i}})
                                                   for i in range(k, k + 10)])
                for _, fut in sent:
                    r = await asyncio.wait_for(fut, 10 * SLOW)
                    self.assertIn("result", r, r)
                    ws_offsets.append(r["result"]["offset"])
            api_offsets = await api_task
            total = n_ws + n_api
            self.assertEqual(sorted(ws_offsets + api_offsets), list(range(1, total + 1)),
                             "publish offsets are not 1..N without gaps or duplicates")
            self.assertEqual(ws_offsets, sorted(ws_offsets))
            self.assertEqual(api_offsets, sorted(api_offsets))
            expect_data = {}
            for i, off in enumerate(ws_offsets):
                expect_data[off] = {"via": "ws", "i": i}
            for i, off in enumerate(api_offsets):
                expect_data[off] = {"via": "api", "i": i}
            for idx, c in enumerate(clients):
                pubs = await c.pubs(total, timeout=30, channel=ch)
                offs = [p["offset"] for p in pubs]
                self.assertEqual(offs, list(range(1, total + 1)),
                                 f"client {idx}: offsets not consecutive 1..{total}: first bad at "
                                 f"{next((i for i, o in enumerate(offs) if o != i + 1), None)}")
                for p in pubs:
                    self.assertEqual(p["data"], expect_data[p["offset"]])
                await c.quiet(0.05)
            info = self.api.call("info", {})["nodes"][0]
            self.assertGreaterEqual(info["websockets"], n_clients, info)
            for c in clients:
                await c.close()
        run(go(), timeout=120)

    def test_several_commands_in_one_frame_replies_in_order(self):
        async def go():
            c = await self.open(connect=False)
            ch1, ch2 = chan("news"), chan("chat")
            # ids deliberately not increasing: the order is the sending order
            sent = await c.send_frame([
                (7, "connect", {"name": "batch"}),
                (3, "subscribe", {"channel": ch1}),
                (9, "subscribe", {"channel": ch2}),
                (2, "publish", {"channel": ch1, "data": "x"}),
                (5, "subscribe", {"channel": ch1}),           # error 105, still in order
                (4, "history", {"channel": ch1}),
                (8, "ping", {}),
            ])
            replies = [await asyncio.wait_for(f, 10 * SLOW) for _, f in sent]
            ids = [i for _, i in c.reply_log]
            self.assertEqual(ids, [7, 3, 9, 2, 5, 4, 8], f"replies out of order: {c.reply_log}")
            frames = sorted({f for f, _ in c.reply_log})
            print(f"\n  7 commands in one frame: replies came in {len(frames)} frame(s)", file=sys.stderr)
            self.assertIn("result", replies[0])
            self.assertEqual(replies[1]["result"]["channel"], ch1)
            self.assertEqual(replies[2]["result"]["channel"], ch2)
            self.assertEqual(replies[3]["result"]["offset"], 1)
            check_error(replies[4].get("error"), 105, "second subscribe in the frame")
            self.assertEqual([p["offset"] for p in replies[5]["result"]["publications"]], [1])
            self.assertEqual(replies[6], {"id": 8, "result": {}})
            await c.close()
        run(go())

    def test_unknown_fields_in_params_are_ignored(self):
        async def go():
            c = await self.open(future_option=[1, 2, 3])
            ch = chan()
            r = await c.result("subscribe", {"channel": ch, "some_new_flag": True, "x": {"y": None}})
            self.assertEqual(r["channel"], ch)
            p = await c.result("publish", {"channel": ch, "data": 5, "meta": "ignored"})
            self.assertEqual(p["offset"], 1)
            await c.close()
        run(go())

    def test_unknown_method_104(self):
        async def go():
            c = await self.open()
            await c.error("no_such_method", {}, code=104)
            # the connection is still usable
            self.assertEqual(await c.result("ping", {}), {})
            await c.close()
        run(go())

    def test_ping(self):
        async def go():
            c = await self.open()
            reply = await c.call("ping", {})
            self.assertEqual(reply, {"id": reply["id"], "result": {}})
            await c.close()
        run(go())

    # -- malformed frames ----------------------------------------------------------

    def test_malformed_frames_close_3501(self):
        bad = [
            b"not json",
            b"[1,2,3]",
            b"42",
            b'"a string"',
            b'{"id":1,"connect":{}}\n{"id":2,"subscribe":',     # second line truncated
            b'{"id":1,"connect":{}',                              # unterminated object
            b"\xff\xfe",                                           # not UTF-8 (1007 is fine too)
        ]
        for payload in bad:
            with self.subTest(payload=payload):
                with raw_native(self.server) as ws:
                    ws.send_text(payload)
                    codes = (3501, 1007) if payload == b"\xff\xfe" else (3501,)
                    # a reply to the well-formed first line may come before the close
                    ws.expect_close(codes, allow_data=True, timeout=5)

    def test_binary_frame_closes_3501(self):
        with raw_native(self.server) as ws:
            ws.send_binary(b'{"id":1,"connect":{}}')
            ws.expect_close(3501, timeout=5)

    def test_malformed_frame_after_connect_closes_3501(self):
        with raw_native(self.server) as ws:
            ws.send_text('{"id":1,"connect":{}}')
            lines = raw_lines(ws, 1)
            self.assertIn("result", lines[0])
            ws.send_text("{{{")
            ws.expect_close(3501, timeout=5)

    # -- history -------------------------------------------------------------------

    def test_history_over_ws_and_api(self):
        async def go():
            ch = chan("hist")
            c = await self.open()
            pubs = []
            for i in range(1, 11):
                pubs.append(await c.result("publish", {"channel": ch, "data": {"n": i}}))
            epoch = pubs[0]["epoch"]
            all_pubs = [{"offset": i, "data": {"n": i}} for i in range(1, 11)]

            async def both(params):
                ws_res = await c.result("history", dict(params, channel=ch))
                api_res = self.api.call("history", dict(params, channel=ch))
                self.assertEqual(ws_res, api_res, f"history {params}: WS and API disagree")
                self.assertEqual((ws_res.get("epoch"), ws_res.get("offset")), (epoch, 10), ws_res)
                return ws_res["publications"]

            self.assertEqual(await both({}), all_pubs)
            self.assertEqual(await both({"limit": 0}), [])
            self.assertEqual(await both({"limit": 100}), all_pubs)
            got = await both({"limit": 3})
            self.assertEqual(len(got), 3)
            self.assertIn(got, (all_pubs[:3], all_pubs[-3:]), "limit 3 (not reverse) must be 3 consecutive, oldest first")
            self.assertEqual(await both({"limit": 3, "reverse": True}), all_pubs[::-1][:3])
            self.assertEqual(await both({"reverse": True}), all_pubs[::-1])
            self.assertEqual(await both({"since": {"offset": 5, "epoch": epoch}}), all_pubs[5:])
            self.assertEqual(await both({"since": {"offset": 5, "epoch": epoch}, "limit": 2}), all_pubs[5:7])
            self.assertEqual(await both({"since": {"offset": 10, "epoch": epoch}}), [])
            # an empty, never used channel
            empty = await c.result("history", {"channel": chan("never")})
            self.assertEqual(empty.get("publications"), [], empty)
            self.assertEqual(empty.get("offset"), 0, empty)
            self.assertIsInstance(empty.get("epoch"), str, empty)
            await c.close()
        run(go())

    def test_history_bad_channel_107(self):
        async def go():
            c = await self.open()
            await c.error("history", {"channel": "bad name"}, code=107)
            await c.close()
        run(go())

    # -- recovery ------------------------------------------------------------------

    def test_recovery_of_100_missed_publications(self):
        async def go():
            ch = chan("rec")
            self.api.publish(ch, {"before": 1})
            c = await self.open()
            sub = await c.result("subscribe", {"channel": ch})
            epoch, offset = sub["epoch"], sub["offset"]
            self.assertEqual(offset, 1)
            await c.close()
            for i in range(100):
                self.api.publish(ch, {"missed": i})
            c = await self.open()
            r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": epoch, "offset": offset})
            self.assertIs(r.get("recovered"), True, {k: v for k, v in r.items() if k != "publications"})
            self.assertEqual((r["channel"], r["epoch"], r["offset"]), (ch, epoch, offset + 100))
            self.assertIs(r.get("recoverable"), True)
            self.assertEqual(r.get("publications"),
                             [{"offset": offset + 1 + i, "data": {"missed": i}} for i in range(100)])
            # live pushes continue after the replay, with no duplicate of a replayed one
            for i in range(5):
                self.api.publish(ch, {"live": i})
            pubs = await c.pubs(5, channel=ch)
            self.assertEqual(pubs, [{"channel": ch, "offset": offset + 101 + i, "data": {"live": i}} for i in range(5)])
            await c.quiet(0.3)
            await c.close()
        run(go())

    def test_recovery_at_current_position(self):
        async def go():
            ch = chan("rec")
            for i in range(3):
                self.api.publish(ch, i)
            c = await self.open()
            sub = await c.result("subscribe", {"channel": ch})
            await c.close()
            c = await self.open()
            r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": sub["epoch"],
                                             "offset": sub["offset"]})
            self.assertIs(r.get("recovered"), True, r)
            self.assertEqual(r.get("publications", []), [])
            self.assertEqual(r["offset"], 3)
            await c.close()
        run(go())

    def test_recovery_with_wrong_epoch_is_refused(self):
        async def go():
            ch = chan("rec")
            for i in range(5):
                self.api.publish(ch, i)
            c = await self.open()
            sub = await c.result("subscribe", {"channel": ch})
            await c.close()
            self.api.publish(ch, "missed")
            wrong = "0000000000000000" if sub["epoch"] != "0000000000000000" else "1111111111111111"
            c = await self.open()
            r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": wrong, "offset": 2})
            self.assertIs(r.get("recovered"), False, r)
            self.assertEqual(r.get("publications", []), [], "publications must be empty when not recovered")
            self.assertEqual((r["epoch"], r["offset"]), (sub["epoch"], 6), r)
            # still subscribed: live pushes arrive
            self.api.publish(ch, "live")
            self.assertEqual(await c.pubs(1), [{"channel": ch, "offset": 7, "data": "live"}])
            await c.close()
        run(go())

    def test_recovery_while_publishing_has_no_gap_and_no_duplicate(self):
        """A publisher keeps publishing while the client resubscribes with recover:
        replay + live pushes must be exactly every offset, once, in order."""
        async def go():
            ch = chan("recrace")
            c = await self.open()
            sub = await c.result("subscribe", {"channel": ch})
            await c.close()
            stop = threading.Event()
            published = []

            def publisher():
                api = Api(self.server)
                try:
                    i = 0
                    # paced, and fewer than the 1000 kept in history, so the
                    # resubscribe lands while this is still publishing
                    while not stop.is_set() and i < 900:
                        published.append(api.publish(ch, i)["offset"])
                        i += 1
                        time.sleep(0.002)
                finally:
                    api.close()
            t = threading.Thread(target=publisher, daemon=True)
            t.start()
            await asyncio.sleep(0.2 * SLOW)
            c = await self.open()
            r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": sub["epoch"],
                                             "offset": sub["offset"]})
            await asyncio.sleep(0.2 * SLOW)
            stop.set()
            await asyncio.get_event_loop().run_in_executor(None, t.join)
            self.assertIs(r.get("recovered"), True, {k: v for k, v in r.items() if k != "publications"})
            replay = [p["offset"] for p in r["publications"]]
            self.assertEqual(replay, list(range(1, r["offset"] + 1)), "replay is not 1..offset")
            last = published[-1]
            live = [p["offset"] for p in await c.pubs(last - r["offset"], timeout=20, channel=ch)]
            self.assertEqual(replay + live, list(range(1, last + 1)),
                             f"replay (1..{r['offset']}) + live pushes are not exactly 1..{last}")
            await c.quiet(0.3)
            print(f"\n  recovery during publishing: {len(replay)} replayed + {len(live)} live", file=sys.stderr)
            await c.close()
        run(go())

    # -- presence ------------------------------------------------------------------

    async def wait_presence(self, ch, expect_ids, what):
        deadline = time.monotonic() + 5 * SLOW
        while True:
            pres = self.api.call("presence", {"channel": ch})
            ids = set(pres.get("clients", {}))
            if ids == set(expect_ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        self.assertEqual(ids, set(expect_ids), f"presence {what}: {pres}")
        return pres

    def test_presence_and_presence_stats(self):
        async def go():
            ch = chan("chat")
            a = await self.open()
            b = await self.open()
            await a.result("subscribe", {"channel": ch})
            await b.result("subscribe", {"channel": ch})
            pres = await a.result("presence", {"channel": ch})
            self.assertEqual(set(pres), {"clients"}, pres)
            self.assertEqual(set(pres["clients"]), {a.client_id, b.client_id}, pres)
            for cid, entry in pres["clients"].items():
                self.assertEqual(entry.get("client"), cid, pres)
                self.assertIsInstance(entry.get("user", ""), str, pres)
            self.assertEqual(pres, self.api.call("presence", {"channel": ch}), "presence: WS and API disagree")
            stats = await a.result("presence_stats", {"channel": ch})
            self.assertEqual(set(stats), {"num_clients", "num_users"}, stats)
            self.assertEqual(stats["num_clients"], 2, stats)
            self.assertIs(type(stats["num_users"]), int, stats)
            self.assertLessEqual(stats["num_users"], 2, stats)
            self.assertEqual(stats, self.api.call("presence_stats", {"channel": ch}))

            # an unsubscribed client disappears
            self.assertEqual(await b.result("unsubscribe", {"channel": ch}), {})
            await self.wait_presence(ch, {a.client_id}, "after b unsubscribed")
            self.assertEqual((await a.result("presence_stats", {"channel": ch}))["num_clients"], 1)
            # a disconnected client disappears
            c = await self.open()
            await c.result("subscribe", {"channel": ch})
            await self.wait_presence(ch, {a.client_id, c.client_id}, "after c subscribed")
            await c.close()
            await self.wait_presence(ch, {a.client_id}, "after c disconnected")
            # abrupt disconnect (TCP closed without a close handshake)
            d = await self.open()
            await d.result("subscribe", {"channel": ch})
            d.ws.transport.abort()
            await self.wait_presence(ch, {a.client_id}, "after d's TCP was aborted")
            await a.close()
            await self.wait_presence(ch, set(), "after everybody left")
            self.assertEqual(self.api.call("presence_stats", {"channel": ch})["num_clients"], 0)
            await b.close()
        run(go())

    def test_no_join_leave_pushes_when_off(self):
        async def go():
            ch = chan("chat")
            a = await self.open()
            b = await self.open()
            await a.result("subscribe", {"channel": ch})
            await b.result("subscribe", {"channel": ch})
            await b.result("unsubscribe", {"channel": ch})
            await a.quiet(0.3)
            await a.close()
            await b.close()
        run(go())

    # -- wildcards -----------------------------------------------------------------

    def test_wildcard_subscriptions(self):
        async def go():
            pfx = f"prices{os.getpid()}x{_seq[0]}"
            _seq[0] += 1
            star = await self.open()
            gt = await self.open()
            exact = await self.open()
            r1 = await star.result("subscribe", {"channel": f"{pfx}.*.usd"})
            self.assertEqual(r1, {"channel": f"{pfx}.*.usd", "pattern": True})
            r2 = await gt.result("subscribe", {"channel": f"{pfx}.>"})
            self.assertEqual(r2, {"channel": f"{pfx}.>", "pattern": True})
            await exact.result("subscribe", {"channel": f"{pfx}.btc.usd"})
            sends = [f"{pfx}.btc.usd", f"{pfx}.eu.btc.usd", f"{pfx}.btc.eur", pfx, f"{pfx}.btc",
                     f"{pfx}.btc.usd.x", "other.btc.usd", f"{pfx}x.btc.usd", f"x{pfx}.btc.usd",
                     f"{pfx}.eth.usd"]
            for i, name in enumerate(sends):
                self.api.publish(name, {"i": i})
            expect_star = [f"{pfx}.btc.usd", f"{pfx}.eth.usd"]
            expect_gt = [f"{pfx}.btc.usd", f"{pfx}.eu.btc.usd", f"{pfx}.btc.eur", f"{pfx}.btc",
                         f"{pfx}.btc.usd.x", f"{pfx}.eth.usd"]
            for c, expect in ((star, expect_star), (gt, expect_gt), (exact, [f"{pfx}.btc.usd"])):
                pubs = await c.pubs(len(expect))
                # (order across different channels is not specified: compare as sorted lists)
                self.assertEqual(sorted(p["channel"] for p in pubs), sorted(expect),
                                 "pattern subscriptions get exactly the matching concrete channel names")
                for p in pubs:
                    self.assertEqual(p["offset"], 1, p)   # every channel here got one publication
                    self.assertEqual(p["data"], {"i": sends.index(p["channel"])})
                await c.quiet(0.3)
            # unsubscribe a pattern
            self.assertEqual(await gt.result("unsubscribe", {"channel": f"{pfx}.>"}), {})
            self.api.publish(f"{pfx}.a.b", 1)
            await gt.quiet(0.3)
            for c in (star, gt, exact):
                await c.close()
        run(go())

    def test_wildcard_and_publish_to_pattern_refused(self):
        async def go():
            c = await self.open()
            # a pattern is not a channel one can publish to
            await c.error("publish", {"channel": "wild.*.x", "data": 1}, code=107)
            await c.error("publish", {"channel": "wild.>", "data": 1}, code=107)
            await c.close()
        run(go())

    # -- unsubscribe and errors -------------------------------------------------------

    def test_unsubscribe_stops_delivery(self):
        async def go():
            ch, other = chan("u"), chan("u")
            c = await self.open()
            await c.result("subscribe", {"channel": ch})
            await c.result("subscribe", {"channel": other})
            self.api.publish(ch, "one")
            self.assertEqual((await c.pubs(1))[0]["data"], "one")
            self.assertEqual(await c.result("unsubscribe", {"channel": ch}), {})
            self.api.publish(ch, "two")
            self.api.publish(other, "sentinel")
            self.assertEqual(await c.pubs(1), [{"channel": other, "offset": 1, "data": "sentinel"}])
            await c.quiet(0.3)
            await c.error("unsubscribe", {"channel": ch}, code=113)
            # subscribe again works, and starts at the current position
            r = await c.result("subscribe", {"channel": ch})
            self.assertEqual(r["offset"], 2)
            await c.close()
        run(go())

    def test_errors_105_107_113(self):
        async def go():
            c = await self.open()
            ch = chan()
            await c.result("subscribe", {"channel": ch})
            await c.error("subscribe", {"channel": ch}, code=105)
            await c.error("unsubscribe", {"channel": chan()}, code=113)
            for bad in ("", "a b", "tab\there", "quote\"", "star*", "q?", "amp&x", "caf\u00e9", "a\u0000b",
                        "semi;colon", "brace{"):
                with self.subTest(name=bad[:20]):
                    await c.error("subscribe", {"channel": bad}, code=107)
                    await c.error("publish", {"channel": bad, "data": 1}, code=107)
            for bad_type in (None, 5, ["a"], {"a": 1}):
                await c.error("subscribe", {"channel": bad_type}, code=107)
            await c.error("subscribe", {}, code=107)
            # the connection survived all of it
            self.assertEqual(await c.result("ping", {}), {})
            await c.close()
        run(go())

    def test_every_documented_name_character_is_accepted(self):
        async def go():
            c = await self.open()
            name = "AZaz09_-=@:,/!~+$%.x" + str(os.getpid())
            r = await c.result("subscribe", {"channel": name})
            self.assertEqual(r["channel"], name)
            await c.result("publish", {"channel": name, "data": 1})
            self.assertEqual(await c.pubs(1), [{"channel": name, "offset": r["offset"] + 1, "data": 1}])
            await c.close()
        run(go())

    def test_user_limited_channel_refused_to_anonymous_103(self):
        async def go():
            c = await self.open()
            await c.error("subscribe", {"channel": "dm:#alice,bob"}, code=103)
            await c.error("publish", {"channel": "dm:#alice,bob", "data": "hi"}, code=103)
            await c.error("subscribe", {"channel": "#alice"}, code=103)
            await c.close()
        run(go())

    def test_server_api_unsubscribe_and_disconnect(self):
        async def go():
            ch = chan("srv")
            a, b = await self.open(), await self.open()
            for c in (a, b):
                await c.result("subscribe", {"channel": ch})
                await c.result("subscribe", {"channel": "srvpat.>"})
            self.assertEqual(self.api.call("unsubscribe", {"channel": ch, "client": a.client_id}), {})
            push = await a.push()
            self.assertEqual(push, {"unsubscribe": {"channel": ch, "code": 2000, "reason": "unsubscribed by the server"}})
            self.api.publish(ch, "after")
            self.assertEqual((await b.pubs(1))[0]["data"], "after")
            await a.quiet(0.2)  # a no longer gets ch ...
            self.api.publish("srvpat.x", "pat")  # ... but keeps its pattern subscription
            self.assertEqual((await a.pubs(1))[0]["data"], "pat")
            self.assertEqual((await b.pubs(1))[0]["data"], "pat")
            await a.error("unsubscribe", {"channel": ch}, code=113)
            # a pattern subscription is addressed by its pattern, with a custom reason
            self.api.call("unsubscribe", {"channel": "srvpat.>", "client": a.client_id, "reason": "no more"})
            self.assertEqual(await a.push(), {"unsubscribe": {"channel": "srvpat.>", "code": 2000, "reason": "no more"}})
            # disconnect: a push, then the close with the same code and reason
            self.api.call("disconnect", {"client": b.client_id, "code": 3005, "reason": "maintenance"})
            self.assertEqual(await b.push(), {"disconnect": {"code": 3005, "reason": "maintenance", "reconnect": True}})
            await asyncio.wait_for(b.closed.wait(), 5 * SLOW)
            self.assertEqual((b.ws.close_code, b.ws.close_reason), (3005, "maintenance"))
            self.api.call("disconnect", {"client": a.client_id, "code": 4001})
            self.assertEqual(await a.push(), {"disconnect": {"code": 4001, "reason": "disconnected by the server",
                                                             "reconnect": False}})
            await asyncio.wait_for(a.closed.wait(), 5 * SLOW)
            self.assertEqual(a.ws.close_code, 4001)
            # bad input
            for method, params in (("unsubscribe", {"channel": ch}), ("disconnect", {}),
                                   ("disconnect", {"client": "x", "code": 2999}),
                                   ("disconnect", {"client": "x", "code": "3000"}),
                                   ("disconnect", {"user": 5}),
                                   ("disconnect", {"client": "x", "reason": "r" * 121}),
                                   ("unsubscribe", {"channel": "bad name", "client": "x"})):
                with self.subTest(method=method, params=params):
                    resp = self.api.raw(f"/api/{method}", json.dumps(params))
                    self.assertEqual(resp.status, 400, f"{method} {params}: {resp!r}")
            # nobody matches: fine, nothing happens
            self.assertEqual(self.api.call("disconnect", {"user": "nobody"}), {})
        run(go())

    def test_idempotent_publish_retried_after_reconnect_is_delivered_once(self):
        async def go():
            ch = chan("idem")
            sub = await self.open()
            await sub.result("subscribe", {"channel": ch})
            a = await self.open()
            r1 = await a.result("publish", {"channel": ch, "data": "once", "idempotency_key": "k-1"})
            # the publisher loses its connection before it sees... whatever: it retries on a new one
            await a.close()
            b = await self.open()
            r2 = await b.result("publish", {"channel": ch, "data": "once", "idempotency_key": "k-1"})
            self.assertEqual(r1, r2, "a retried publish with the same idempotency key must not publish again")
            # another key is another publication; so is the same key on another channel
            r3 = await b.result("publish", {"channel": ch, "data": "twice", "idempotency_key": "k-2"})
            self.assertEqual(r3["offset"], r1["offset"] + 1)
            other = await b.result("publish", {"channel": chan("idem"), "data": 1, "idempotency_key": "k-1"})
            self.assertEqual(other["offset"], 1)
            # and the server API shares the keys of the channel
            r4 = self.api.publish(ch, "once", idempotency_key="k-1")
            self.assertEqual(r4, r1)
            self.assertEqual(await sub.pubs(2), [{"channel": ch, "offset": r1["offset"], "data": "once"},
                                                 {"channel": ch, "offset": r3["offset"], "data": "twice"}])
            await sub.quiet(0.3)
            h = await sub.result("history", {"channel": ch})
            self.assertEqual([p["data"] for p in h["publications"]], ["once", "twice"])
            await b.error("publish", {"channel": ch, "data": 1, "idempotency_key": "k" * 129}, code=107)
            await b.error("publish", {"channel": ch, "data": 1, "idempotency_key": 5}, code=107)
            for c in (sub, b):
                await c.close()
        run(go())

    def test_documented_refusals_of_item_6(self):
        """docs/protocol.md, tried literally: an empty idempotency_key is 107
        (the API answers 400); an id that is missing, null or 0 is 107 (it
        must be a positive integer), answered with id 0; publishing to a
        pattern says so instead of "misplaced wildcard"."""
        async def go():
            c = await self.open()
            err = await c.error("publish", {"channel": chan("idem"), "data": 1, "idempotency_key": ""}, code=107)
            self.assertIn("idempotency_key must be a string of 1 to 128 bytes", err["detail"])
            for line, detail in (('{"ping":{}}', "id is missing (a positive integer)"),
                                 ('{"id":null,"publish":{"channel":"x","data":1}}', "id is missing (a positive integer)"),
                                 ('{"id":0,"ping":{}}', "id must be a positive integer")):
                await c.ws.send(line)
                await c.result("ping")  # replies come in order: the refusal is already there
                self.assertEqual(len(c.unexpected), 1, (line, c.unexpected))
                reply = c.unexpected.pop()
                self.assertEqual(reply["id"], 0, reply)
                check_error(reply["error"], 107, line)
                self.assertEqual(reply["error"]["detail"], detail)
            for pattern in ("prices.*", "prices.>", "prices.*.usd"):
                err = await c.error("publish", {"channel": pattern, "data": 1}, code=107)
                self.assertEqual(err["detail"], "cannot publish to a pattern", pattern)
            err = await c.error("publish", {"channel": "prices.a*", "data": 1}, code=107)  # not a pattern either
            self.assertIn("misplaced wildcard", err["detail"])
            err = await c.error("history", {"channel": "prices.*"}, code=107)
            self.assertEqual(err["detail"], "a pattern is not a channel here")
            await c.close()
        run(go())


# ===========================================================================
# [channels] options
# ===========================================================================


class TestMaxCommandsPerFrame(Base):
    server_args = KEY_ARGS + ("--channels.max-commands-per-frame", "3")

    def test_three_commands_ok_four_close_3501(self):
        with raw_native(self.server) as ws:
            ws.send_text(frame({"id": 1, "connect": {}}, {"id": 2, "ping": {}}, {"id": 3, "ping": {}}))
            self.assertEqual([ln["id"] for ln in raw_lines(ws, 3)], [1, 2, 3])
            ws.send_text(frame(*({"id": i, "ping": {}} for i in range(4, 8))))
            ws.expect_close(3501, timeout=5)

    def test_four_commands_in_the_first_frame_close_3501(self):
        with raw_native(self.server) as ws:
            ws.send_text(frame({"id": 1, "connect": {}}, *({"id": i, "ping": {}} for i in range(2, 5))))
            ws.expect_close(3501, timeout=5)


class TestSmallHistory(Base):
    server_args = KEY_ARGS + ("--channels.history-size", "10", "--channels.history-ttl", "10m")

    async def miss(self, n):
        ch = chan("small")
        self.api.publish(ch, "start")
        c = await Native.open(self.server)
        sub = await c.result("subscribe", {"channel": ch})
        await c.close()
        for i in range(n):
            self.api.publish(ch, {"i": i})
        c = await Native.open(self.server)
        r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": sub["epoch"],
                                         "offset": sub["offset"]})
        h = self.api.call("history", {"channel": ch})
        await c.close()
        return sub, r, h

    def test_miss_50_with_history_10_is_not_recovered(self):
        sub, r, h = run(self.miss(50))
        self.assertIs(r.get("recovered"), False, {k: v for k, v in r.items() if k != "publications"})
        self.assertEqual(r.get("publications", []), [], "publications must be empty when recovered is false")
        self.assertEqual((r["epoch"], r["offset"]), (sub["epoch"], sub["offset"] + 50))
        self.assertEqual([p["offset"] for p in h["publications"]], list(range(42, 52)), "history keeps the last 10")

    def test_miss_exactly_10_is_recovered(self):
        sub, r, _ = run(self.miss(10))
        self.assertIs(r.get("recovered"), True, r)
        self.assertEqual(r["publications"], [{"offset": sub["offset"] + 1 + i, "data": {"i": i}} for i in range(10)])

    def test_miss_11_is_not_recovered(self):
        sub, r, _ = run(self.miss(11))
        self.assertIs(r.get("recovered"), False, r)
        self.assertEqual(r.get("publications", []), [])


class TestHistoryTtl(Base):
    server_args = KEY_ARGS + ("--channels.history-size", "100", "--channels.history-ttl", "1s")

    def test_expired_history_is_not_recovered(self):
        async def go():
            ch = chan("ttl")
            c = await Native.open(self.server)
            sub = await c.result("subscribe", {"channel": ch})
            await c.close()
            for i in range(5):
                self.api.publish(ch, i)
            h = self.api.call("history", {"channel": ch})
            self.assertEqual(len(h["publications"]), 5, "fresh publications are in history")
            await asyncio.sleep(2.5)
            h = self.api.call("history", {"channel": ch})
            self.assertEqual(h["publications"], [], f"history after history_ttl 1s: {h}")
            self.assertEqual((h["epoch"], h["offset"]), (sub["epoch"], 5), "offset and epoch are kept")
            c = await Native.open(self.server)
            r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": sub["epoch"],
                                             "offset": sub["offset"]})
            self.assertIs(r.get("recovered"), False, r)
            self.assertEqual(r.get("publications", []), [])
            await c.close()
        run(go())


class TestPresenceDisabled(Base):
    server_args = KEY_ARGS + ("--channels.presence", "false")

    def test_presence_108(self):
        async def go():
            ch = chan("nopres")
            c = await Native.open(self.server)
            await c.result("subscribe", {"channel": ch})
            await c.error("presence", {"channel": ch}, code=108)
            await c.error("presence_stats", {"channel": ch}, code=108)
            await c.close()
        run(go())


class TestJoinLeave(Base):
    server_args = KEY_ARGS + ("--channels.join-leave", "true", "--channels.presence", "true")

    async def next_other(self, c, kind, own_ids):
        """Next join/leave push about a client not in own_ids."""
        while True:
            p = await c.push()
            self.assertEqual(len(p), 1, p)
            k = next(iter(p))
            self.assertIn(k, ("join", "leave"), f"unexpected push {p}")
            if p[k]["info"].get("client") in own_ids:
                continue
            self.assertEqual(k, kind, f"expected a {kind} push, got {p}")
            return p[k]

    def test_join_and_leave(self):
        async def go():
            ch = chan("lobby")
            a = await Native.open(self.server)
            await a.result("subscribe", {"channel": ch})
            b = await Native.open(self.server)
            await b.result("subscribe", {"channel": ch})
            j = await self.next_other(a, "join", {a.client_id})
            self.assertEqual(j["channel"], ch)
            self.assertEqual(j["info"]["client"], b.client_id, j)
            self.assertIsInstance(j["info"].get("user", ""), str, j)
            await b.result("unsubscribe", {"channel": ch})
            lv = await self.next_other(a, "leave", {a.client_id})
            self.assertEqual((lv["channel"], lv["info"]["client"]), (ch, b.client_id), lv)
            # a disconnect is a leave too
            c = await Native.open(self.server)
            await c.result("subscribe", {"channel": ch})
            j = await self.next_other(a, "join", {a.client_id})
            self.assertEqual(j["info"]["client"], c.client_id)
            await c.close()
            lv = await self.next_other(a, "leave", {a.client_id})
            self.assertEqual((lv["channel"], lv["info"]["client"]), (ch, c.client_id), lv)
            # exactly one join and one leave each: nothing else about b or c
            rest = [p for p in a.drain() if next(iter(p.values()))["info"].get("client") != a.client_id]
            self.assertEqual(rest, [])
            await a.close()
            await b.close()
        run(go())


class TestLimits(Base):
    server_args = KEY_ARGS + ("--channels.max-subscriptions", "2", "--channels.max-channel-length", "10",
                              "--channels.max-publication-size", "100")

    def test_max_subscriptions_106(self):
        async def go():
            c = await Native.open(self.server)
            await c.result("subscribe", {"channel": "lim:a"})
            await c.result("subscribe", {"channel": "lim:b"})
            await c.error("subscribe", {"channel": "lim:c"}, code=106)
            await c.error("subscribe", {"channel": "lim.>"}, code=106)
            # freeing one makes room again
            await c.result("unsubscribe", {"channel": "lim:a"})
            await c.result("subscribe", {"channel": "lim:c"})
            await c.close()
        run(go())

    def test_max_subscriptions_on_connect_subs(self):
        async def go():
            c = await Native.open(self.server, subs=["s1", "s2", "s3"])
            subs = c.connect_result.get("subs", {})
            failed = [k for k, v in subs.items() if "error" in v]
            self.assertEqual(len(failed), 1, f"3 subs with max_subscriptions 2: {subs}")
            check_error(subs[failed[0]]["error"], 106, "connect subs beyond the limit")
            await c.close()
        run(go())

    def test_max_channel_length_107(self):
        async def go():
            c = await Native.open(self.server)
            await c.result("subscribe", {"channel": "x" * 10})
            await c.error("subscribe", {"channel": "y" * 11}, code=107)
            await c.error("publish", {"channel": "y" * 11, "data": 1}, code=107)
            await c.error("subscribe", {"channel": ""}, code=107)
            await c.error("subscribe", {"channel": "a b"}, code=107)
            await c.close()
        run(go())

    def test_max_publication_size_115(self):
        async def go():
            c = await Native.open(self.server)
            await c.result("subscribe", {"channel": "big"})
            ok = await c.result("publish", {"channel": "big", "data": "x" * 50})
            err = await c.error("publish", {"channel": "big", "data": "x" * 200}, code=115)
            self.assertEqual(err["detail"], "publication is 202 bytes, the limit is 100 (channels.max_publication_size)")
            await c.error("publish", {"channel": "big", "data": {"k": ["y" * 60, "z" * 60]}}, code=115)
            # nothing of the refused ones was published
            self.assertEqual(await c.pubs(1), [{"channel": "big", "offset": ok["offset"], "data": "x" * 50}])
            await c.quiet(0.3)
            # the API refuses it with 413
            self.api.call("publish", {"channel": "big", "data": "x" * 200}, expect=413)
            await c.close()
        run(go())


class TestPublishDisabled(Base):
    server_args = KEY_ARGS + ("--channels.allow-publish", "false")

    def test_client_publish_103_api_still_works(self):
        async def go():
            ch = chan("ro")
            c = await Native.open(self.server)
            await c.result("subscribe", {"channel": ch})
            await c.error("publish", {"channel": ch, "data": "nope"}, code=103)
            r = self.api.publish(ch, "from the backend")
            self.assertEqual(await c.pubs(1), [{"channel": ch, "offset": r["offset"], "data": "from the backend"}])
            await c.quiet(0.2)
            await c.close()
        run(go())


class TestAnonymousRefused(Base):
    server_args = KEY_ARGS + ("--channels.allow-anonymous", "false")

    def test_anonymous_subscribe_103(self):
        async def go():
            c = await Native.open(self.server)
            await c.error("subscribe", {"channel": chan("anon")}, code=103)
            await c.close()
        run(go())


# ===========================================================================
# Slow consumer
# ===========================================================================


class TestNamespaces(Base):
    """[namespace.NAME] options override [channels] for the channels of NAME."""
    server_args = KEY_ARGS + ("--channels.history-size", "100", "--channels.presence", "true",
                              "--namespace.chat.history-size", "3", "--namespace.chat.join-leave", "true",
                              "--namespace.chat.max-subscribers", "2",
                              "--namespace.ticker.allow-publish", "false", "--namespace.ticker.presence", "false")

    def test_history_size_join_leave_and_max_subscribers_per_namespace(self):
        async def go():
            room, news = chan("chat"), "news" + str(os.getpid())
            for i in range(6):
                self.api.publish(room, i)
                self.api.publish(news, i)
            # history: 3 in chat:*, 100 elsewhere
            self.assertEqual([p["data"] for p in self.api.call("history", {"channel": room})["publications"]],
                             [3, 4, 5])
            self.assertEqual(len(self.api.call("history", {"channel": news})["publications"]), 6)
            a, b, c = await self.open(), await self.open(), await self.open()
            await a.result("subscribe", {"channel": room})
            await b.result("subscribe", {"channel": room})
            # join pushes in chat:* (join_leave on there): a sees its own join and b's
            joins = [await a.push(timeout=5), await a.push(timeout=5)]
            self.assertEqual([j.get("join", {}).get("channel") for j in joins], [room, room], joins)
            # max_subscribers = 2 in chat:*, counted over both workers
            err = await c.error("subscribe", {"channel": room}, code=106)
            self.assertIn("max_subscribers", err.get("detail", ""))
            await c.result("subscribe", {"channel": news})  # not limited elsewhere
            await b.close()
            leave = await a.push(timeout=5)
            self.assertEqual(leave.get("leave", {}).get("channel"), room, leave)
            await c.result("subscribe", {"channel": room})  # a place became free
            for x in (a, c):
                await x.close()
        run(go())

    def test_publish_and_presence_off_in_one_namespace(self):
        async def go():
            tick = chan("ticker")
            c = await self.open()
            await c.result("subscribe", {"channel": tick})
            await c.error("publish", {"channel": tick, "data": 1}, code=103)
            await c.error("presence", {"channel": tick}, code=108)
            self.api.publish(tick, 42)  # the backend still may
            self.assertEqual((await c.pubs(1))[0]["data"], 42)
            ch = chan("other")
            await c.result("subscribe", {"channel": ch})
            await c.result("publish", {"channel": ch, "data": 1})
            await c.result("presence", {"channel": ch})
            await c.close()
        run(go())


class TestUnknownNamespacesRefused(Base):
    server_args = KEY_ARGS + ("--channels.allow-unknown-namespaces", "false", "--namespace.chat.history-size", "5")

    def test_unknown_namespace_102_known_and_none_ok(self):
        async def go():
            c = await self.open()
            await c.error("subscribe", {"channel": "nope:x"}, code=102)
            await c.error("publish", {"channel": "nope:x", "data": 1}, code=102)
            await c.result("subscribe", {"channel": chan("chat")})
            await c.result("subscribe", {"channel": "plain" + str(os.getpid())})
            await c.close()
            resp = self.api.raw("/api/publish", json.dumps({"channel": "nope:x", "data": 1}))
            self.assertEqual(resp.status, 400, resp)
            self.assertIn("namespace", resp.json()["error"])
        run(go())


class TestSlowConsumer(Base):
    # close_timeout is raised so the server keeps the socket open until the test
    # reads it after publishing (the close frame queued behind unread data must
    # still be readable then).
    server_args = KEY_ARGS + ("--websocket.max-queued-bytes", "64KiB", "--websocket.close-timeout", "60s",
                              "--channels.max-publication-size", "64KiB", "--http.max-body-size", "4MiB",
                              "--channels.history-size", "100")
    N_READERS = 20 if SANITIZE else 200
    PUB_SIZE = 8000
    TOTAL = 5 * 1000 * 1000
    PER_BATCH = 4
    WINDOW = 12     # publications a reader may lag behind before the publisher waits

    def test_slow_consumer_closed_3008_readers_lose_nothing(self):
        raise_nofile_limit()
        n_pubs = self.TOTAL // self.PUB_SIZE
        if SANITIZE:
            print(f"\n  HERALD_SANITIZE=ON: {self.N_READERS} reading subscribers instead of 200", file=sys.stderr)
        ch = chan("slow")
        pad = "p" * self.PUB_SIZE

        async def go():
            readers = []
            for k in range(0, self.N_READERS, 50):
                readers += await asyncio.gather(*(Native.open(self.server)
                                                  for _ in range(min(50, self.N_READERS - k))))
            start_offsets = set()
            for c in readers:
                start_offsets.add((await c.result("subscribe", {"channel": ch}))["offset"])
            self.assertEqual(start_offsets, {0})
            off_re = re.compile(r'"offset"\s*:\s*(\d+)')
            ts_re = re.compile(r'"ts"\s*:\s*([0-9.eE+-]+)')
            state = []
            for c in readers:
                st = {"offsets": [], "lat": []}
                state.append(st)

                def handler(line, st=st):
                    now = time.time()
                    st["offsets"].append(int(off_re.search(line).group(1)))
                    st["lat"].append(now - float(ts_re.search(line).group(1)))
                c.pub_handler = handler

            # the slow one: raw socket, tiny receive buffer, reads its replies and then nothing
            slow = raw_native(self.server, rcvbuf=4096)
            slow.send_text(frame({"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": ch}}))
            lines = raw_lines(slow, 2)
            self.assertIn("result", lines[1], lines)

            def min_seen():
                return min((st["offsets"][-1] if st["offsets"] else 0) for st in state)

            published = 0
            t0 = time.monotonic()
            loop = asyncio.get_event_loop()
            api = Api(self.server)
            try:
                while published < n_pubs:
                    k = min(self.PER_BATCH, n_pubs - published)
                    datas = [{"ts": time.time(), "seq": published + i, "pad": pad} for i in range(k)]
                    res = await loop.run_in_executor(None, api.batch_publish, ch, datas)
                    published += k
                    self.assertEqual(res[-1]["offset"], published)
                    deadline = time.monotonic() + 30 * SLOW
                    while min_seen() < published - self.WINDOW:
                        if time.monotonic() > deadline:
                            closed = [i for i, c in enumerate(readers) if c.closed.is_set()]
                            raise AssertionError(
                                f"readers stalled at offset {min_seen()} of {published}; closed readers: "
                                f"{[(i, readers[i].ws.close_code) for i in closed][:5]}")
                        await asyncio.sleep(0.002)
                deadline = time.monotonic() + 60 * SLOW
                while min_seen() < published and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            finally:
                api.close()
            elapsed = time.monotonic() - t0

            # every reader: every publication, once, in order, and still connected
            lats = []
            for i, (c, st) in enumerate(zip(readers, state)):
                self.assertFalse(c.closed.is_set(), f"reader {i} was disconnected: close code {c.ws.close_code} "
                                                    f"{c.ws.close_reason!r}")
                self.assertEqual(st["offsets"], list(range(1, published + 1)),
                                 f"reader {i}: got {len(st['offsets'])} pubs of {published}, first wrong index "
                                 f"{next((j for j, o in enumerate(st['offsets']) if o != j + 1), None)}")
                lats += st["lat"]
            mb = published * self.PUB_SIZE / 1e6
            print(f"\n  published {published} x {self.PUB_SIZE} B = {mb:.1f} MB to {len(readers)} readers + 1 slow "
                  f"in {elapsed:.1f}s ({published * len(readers) / elapsed:,.0f} deliveries/s, "
                  f"{mb * len(readers) / elapsed:.0f} MB/s)\n"
                  f"  delivery latency (publish -> python reader): p50 {percentile(lats, 50) * 1000:.1f} ms, "
                  f"p99 {percentile(lats, 99) * 1000:.1f} ms, max {max(lats) * 1000:.1f} ms", file=sys.stderr)

            # now read the slow consumer: some pubs, then close 3008
            got, close = [], None
            try:
                while True:
                    f = slow.recv_frame(timeout=10)
                    if f.opcode == OP_CLOSE:
                        close = f
                        break
                    if f.opcode == OP_TEXT:
                        got += [int(m) for m in re.findall(rb'"offset":(\d+)', f.payload)]
                    elif f.opcode in (OP_PING, OP_PONG, 0):
                        continue
            except (WSClosed, socket.timeout, TimeoutError) as e:
                raise AssertionError(f"slow consumer: no close frame (after {len(got)} pubs, last offset "
                                     f"{got[-1] if got else None}): {e!r}")
            finally:
                slow.close_socket()
            print(f"  slow consumer: {len(got)} pubs ({len(got) * self.PUB_SIZE / 1e3:.0f} KB) before close "
                  f"{close.close_code()} {close.close_reason()!r}", file=sys.stderr)
            self.assertEqual(close.close_code(), 3008, f"slow consumer close {close.close_code()} "
                                                       f"{close.close_reason()!r} (docs/protocol.md: 3008)")
            self.assertLess(len(got), published, "the slow consumer was closed only after everything was sent")
            self.assertEqual(got, sorted(set(got)), "pubs before the close are out of order / duplicated")
            self.assertEqual(got, list(range(1, len(got) + 1)), "pubs before the slow-consumer close have a gap")
            for c in readers:
                await c.close()
        run(go(), timeout=300)


# ===========================================================================
# Graceful shutdown
# ===========================================================================


class TestGracefulShutdown(unittest.TestCase):
    def test_sigterm_closes_native_clients_1001(self):
        srv = Herald(*KEY_ARGS, "--drain-timeout", "5s", workers=2)
        srv.start()
        try:
            async def go():
                clients = [await Native.open(srv) for _ in range(6)]
                for c in clients:
                    await c.result("subscribe", {"channel": "shutdown"})
                raw = raw_native(srv)
                raw.send_text(frame({"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": "shutdown"}}))
                raw_lines(raw, 2)
                srv.signal(signal.SIGTERM)
                for c in clients:
                    await asyncio.wait_for(c.closed.wait(), 10 * SLOW)
                    self.assertEqual(c.ws.close_code, 1001, f"close on SIGTERM: {c.ws.close_code} {c.ws.close_reason!r}")
                    self.assertIn("shutting down", c.ws.close_reason)
                f = raw.expect_close(1001, timeout=10)
                self.assertEqual(f.close_reason(), b"server shutting down, reconnect")
                raw.close_socket()
            run(go())
            rc = srv.wait(15 * SLOW)
            self.assertEqual(rc, 0, f"exit code {rc} after SIGTERM")
        except BaseException:
            dump_output(srv, "server output")
            raise
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
