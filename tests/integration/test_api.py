#!/usr/bin/env python3
"""The server HTTP API (POST /api/<method>) of the real herald binary, written
from docs/api.md (and docs/protocol.md for what WebSocket clients see).

Every method with good input (publish, broadcast, history, history_remove,
presence, presence_stats, channels, info, batch) and bad input (authentication,
HTTP method, unknown API method, invalid JSON with line / column, wrong types,
bad channel names, size limits, api.max_broadcast_channels and
api.max_batch_commands lowered). Every error answer must have the documented
body {"error": <message>, "status": <status>}.
"""

import asyncio
import json
import os
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, Herald, HeraldTestCase, main  # noqa: E402
from herald_native import API_KEY, Api, ApiTestCase, Native, check_api_error, run  # noqa: E402

KEY_ARGS = ("--api-key", API_KEY)
_seq = [0]


def chan(prefix="api"):
    _seq[0] += 1
    return f"{prefix}:{os.getpid()}-{_seq[0]}"


class ApiBase(ApiTestCase):
    server_args = KEY_ARGS + ("--channels.max-publication-size", "1KiB", "--http.max-body-size", "256KiB",
                              "--channels.presence", "true", "--channels.history-size", "1000",
                              "--channels.history-ttl", "10m")

    def expect_error(self, api_method, body, status, path=None, **kw):
        """Send body (bytes / str / object) and require an error `status` with the documented body."""
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        what = path or api_method
        resp = self.api.raw(path or f"/api/{api_method}", body, **kw)
        try:
            data = resp.json()
        except ValueError:
            self.fail(f"{what} {str(body)[:100]}: error body is not JSON: {resp!r}")
        self.assertEqual(resp.status, status, f"{what} {str(body)[:200]}: {resp.status} {data}")
        check_api_error(data, status, f"{what} {str(body)[:100]}")
        return data


class TestApiMethods(ApiBase):

    # -- publish -------------------------------------------------------------------

    def test_publish(self):
        ch = chan()
        r1 = self.api.publish(ch, {"text": "hello"})
        self.assertEqual(set(r1), {"offset", "epoch"}, r1)
        self.assertEqual(r1["offset"], 1)
        self.assertIsInstance(r1["epoch"], str)
        self.assertTrue(r1["epoch"])
        for i, v in enumerate(["s", 1, 2.5, None, True, [1, [2]], {"a": {"b": []}}], start=2):
            r = self.api.publish(ch, v)
            self.assertEqual(r, {"offset": i, "epoch": r1["epoch"]})
        h = self.api.call("history", {"channel": ch})
        self.assertEqual([p["data"] for p in h["publications"]],
                         [{"text": "hello"}, "s", 1, 2.5, None, True, [1, [2]], {"a": {"b": []}}])

    def test_x_api_key_header_works(self):
        resp = self.api.raw("/api/publish", json.dumps({"channel": chan(), "data": 1}), auth=False,
                            headers={"X-API-Key": API_KEY})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["offset"], 1)

    def test_publish_delivered_to_ws_subscribers(self):
        async def go():
            ch = chan()
            clients = [await Native.open(self.server) for _ in range(4)]
            for c in clients:
                await c.result("subscribe", {"channel": ch})
            r = self.api.publish(ch, {"x": 1})
            for c in clients:
                self.assertEqual(await c.pubs(1), [{"channel": ch, "offset": r["offset"], "data": {"x": 1}}])
                await c.close()
        run(go())

    # -- broadcast -----------------------------------------------------------------

    def test_broadcast(self):
        async def go():
            a, b, c = chan("b"), chan("b"), chan("b")
            for _ in range(12):
                self.api.publish(a, "earlier")
            cl = await Native.open(self.server)
            await cl.result("subscribe", {"channel": a})
            await cl.result("subscribe", {"channel": b})
            r = self.api.call("broadcast", {"channels": [a, b, c], "data": {"alert": 1}})
            self.assertEqual(set(r), {"responses"}, r)
            resp = r["responses"]
            self.assertEqual(len(resp), 3, r)
            self.assertEqual([x["offset"] for x in resp], [13, 1, 1], r)
            for x in resp:
                self.assertEqual(set(x), {"offset", "epoch"}, r)
            for name, x in zip((a, b, c), resp):
                h = self.api.call("history", {"channel": name, "reverse": True, "limit": 1})
                self.assertEqual(h["publications"], [{"offset": x["offset"], "data": {"alert": 1}}])
                self.assertEqual(h["epoch"], x["epoch"])
            pubs = await cl.pubs(2)
            self.assertEqual(sorted((p["channel"], p["offset"]) for p in pubs), sorted([(a, 13), (b, 1)]))
            await cl.quiet(0.2)
            await cl.close()
        run(go())

    def test_broadcast_with_one_invalid_channel_publishes_nothing(self):
        a, b = chan("b"), chan("b")
        self.api.publish(a, "before")
        for bad in ("bad name", "", "x" * 100000 if False else "star*", 5, None):
            with self.subTest(bad=bad):
                self.expect_error("broadcast", {"channels": [a, bad, b], "data": 1}, 400)
        self.assertEqual(self.api.call("history", {"channel": a})["offset"], 1, "broadcast published to a")
        self.assertEqual(self.api.call("history", {"channel": b})["offset"], 0, "broadcast published to b")
        self.assertEqual(len(self.api.call("history", {"channel": a})["publications"]), 1)

    def test_broadcast_bad_input(self):
        ch = chan("b")
        self.expect_error("broadcast", {"channels": ch, "data": 1}, 400)         # not an array
        self.expect_error("broadcast", {"data": 1}, 400)                         # missing channels
        self.expect_error("broadcast", {"channels": [ch]}, 400)                  # missing data
        self.expect_error("broadcast", {"channels": [ch], "data": "x" * 2000}, 413)
        self.assertEqual(self.api.call("history", {"channel": ch})["offset"], 0)

    def test_broadcast_more_than_10000_channels_refused(self):
        first = chan("many")
        names = [first] + [f"m{i}" for i in range(10000)]
        resp = self.api.raw("/api/broadcast", json.dumps({"channels": names, "data": 1}))
        self.assertIn(resp.status, (400, 413), f"broadcast to 10,001 channels: {resp!r}")
        check_api_error(resp.json(), resp.status, "broadcast to 10,001 channels")
        self.assertEqual(self.api.call("history", {"channel": first})["offset"], 0)
        # exactly 10,000 is fine
        r = self.api.call("broadcast", {"channels": names[:10000], "data": 1})
        self.assertEqual(len(r["responses"]), 10000)

    # -- history -------------------------------------------------------------------

    def test_history(self):
        ch = chan("h")
        epoch = None
        for i in range(1, 8):
            epoch = self.api.publish(ch, {"n": i})["epoch"]
        allp = [{"offset": i, "data": {"n": i}} for i in range(1, 8)]
        h = self.api.call("history", {"channel": ch})
        self.assertEqual(set(h), {"epoch", "offset", "publications"}, h)
        self.assertEqual((h["epoch"], h["offset"], h["publications"]), (epoch, 7, allp))
        self.assertEqual(self.api.call("history", {"channel": ch, "limit": 0})["publications"], [])
        self.assertEqual(self.api.call("history", {"channel": ch, "limit": 0})["offset"], 7)
        self.assertEqual(self.api.call("history", {"channel": ch, "reverse": True})["publications"], allp[::-1])
        self.assertEqual(self.api.call("history", {"channel": ch, "reverse": True, "limit": 2})["publications"],
                         allp[::-1][:2])
        self.assertEqual(self.api.call("history", {"channel": ch, "since": {"offset": 5, "epoch": epoch}})
                         ["publications"], allp[5:])
        self.assertEqual(self.api.call("history", {"channel": ch, "since": {"offset": 2, "epoch": epoch},
                                                   "limit": 3})["publications"], allp[2:5])
        self.assertEqual(self.api.call("history", {"channel": ch, "limit": 3, "reverse": False})["publications"]
                         .__len__(), 3)

    def test_history_bad_input(self):
        self.expect_error("history", {}, 400)
        self.expect_error("history", {"channel": 7}, 400)
        self.expect_error("history", {"channel": "bad name"}, 400)
        self.expect_error("history", {"channel": chan(), "limit": "3"}, 400)
        self.expect_error("history", {"channel": chan(), "reverse": "yes"}, 400)
        self.expect_error("history", {"channel": chan(), "since": 5}, 400)

    # -- history_remove --------------------------------------------------------------

    def test_history_remove_then_recover_is_not_recovered(self):
        async def go():
            ch = chan("hr")
            for i in range(3):
                self.api.publish(ch, i)
            c = await Native.open(self.server)
            sub = await c.result("subscribe", {"channel": ch})
            await c.close()
            for i in range(3):
                self.api.publish(ch, i)
            self.assertEqual(self.api.call("history_remove", {"channel": ch}), {})
            h = self.api.call("history", {"channel": ch})
            self.assertEqual(h, {"epoch": sub["epoch"], "offset": 6, "publications": []},
                             "history_remove keeps the offset and epoch")
            c = await Native.open(self.server)
            r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": sub["epoch"],
                                             "offset": sub["offset"]})
            self.assertIs(r.get("recovered"), False, r)
            self.assertEqual(r.get("publications", []), [])
            self.assertEqual((r["epoch"], r["offset"]), (sub["epoch"], 6))
            # publishing goes on from the same position
            self.assertEqual(self.api.publish(ch, "after"), {"offset": 7, "epoch": sub["epoch"]})
            self.assertEqual(await c.pubs(1), [{"channel": ch, "offset": 7, "data": "after"}])
            await c.close()
        run(go())

    def test_history_remove_bad_input(self):
        self.expect_error("history_remove", {}, 400)
        self.expect_error("history_remove", {"channel": "bad name"}, 400)

    # -- presence --------------------------------------------------------------------

    def test_presence_and_stats(self):
        async def go():
            ch = chan("p")
            self.assertEqual(self.api.call("presence", {"channel": ch}), {"clients": {}})
            self.assertEqual(self.api.call("presence_stats", {"channel": ch}), {"num_clients": 0, "num_users": 0})
            a = await Native.open(self.server)
            b = await Native.open(self.server)
            for c in (a, b):
                await c.result("subscribe", {"channel": ch})
            p = self.api.call("presence", {"channel": ch})
            self.assertEqual(set(p), {"clients"})
            self.assertEqual(set(p["clients"]), {a.client_id, b.client_id}, p)
            for cid, entry in p["clients"].items():
                self.assertEqual(entry["client"], cid)
            s = self.api.call("presence_stats", {"channel": ch})
            self.assertEqual(set(s), {"num_clients", "num_users"})
            self.assertEqual(s["num_clients"], 2)
            self.assertLessEqual(s["num_users"], 2)
            await a.close()
            await b.close()
        run(go())

    def test_presence_bad_input(self):
        for m in ("presence", "presence_stats"):
            self.expect_error(m, {}, 400)
            self.expect_error(m, {"channel": "bad name"}, 400)
            self.expect_error(m, {"channel": ["x"]}, 400)

    # -- channels ----------------------------------------------------------------------

    def test_channels(self):
        pfx = f"apich{os.getpid()}"
        offs = {f"{pfx}.a.x": 2, f"{pfx}.b.x": 1, f"{pfx}.c.y": 3, f"{pfx}.d.e.x": 1}
        for name, n in offs.items():
            for i in range(n):
                self.api.publish(name, i)
        allc = self.api.call("channels", {})
        self.assertEqual(set(allc), {"channels"})
        for name, n in offs.items():
            self.assertIn(name, allc["channels"], allc)
            self.assertEqual(allc["channels"][name]["offset"], n, allc["channels"][name])
        star = self.api.call("channels", {"pattern": f"{pfx}.*.x"})
        self.assertEqual(set(star["channels"]), {f"{pfx}.a.x", f"{pfx}.b.x"}, star)
        gt = self.api.call("channels", {"pattern": f"{pfx}.>"})
        self.assertEqual(set(gt["channels"]), set(offs), gt)
        self.assertEqual(gt["channels"][f"{pfx}.c.y"]["offset"], 3)
        exact = self.api.call("channels", {"pattern": f"{pfx}.c.y"})
        self.assertEqual(set(exact["channels"]), {f"{pfx}.c.y"})
        none = self.api.call("channels", {"pattern": f"{pfx}.nothing.>"})
        self.assertEqual(none, {"channels": {}})

    def test_channels_bad_pattern(self):
        self.expect_error("channels", {"pattern": "bad name"}, 400)
        self.expect_error("channels", {"pattern": 5}, 400)

    # -- info ---------------------------------------------------------------------------

    def test_info(self):
        async def go():
            i1 = self.api.call("info", {})
            self.assertEqual(set(i1), {"nodes"})
            self.assertEqual(len(i1["nodes"]), 1)
            n1 = i1["nodes"][0]
            want = {"name": str, "version": str, "uptime_ms": int, "workers": int, "connections": int,
                    "websockets": int, "http_requests": int, "messages_in": int, "messages_out": int,
                    "engine": str}
            for k, t in want.items():
                self.assertIn(k, n1, n1)
                self.assertIs(type(n1[k]), t, f"info {k}: {n1[k]!r}")
            self.assertEqual(n1["name"], f"{self.server.host}:{self.server.port}", n1)
            self.assertRegex(n1["version"], r"^\d+\.\d+\.\d+")
            self.assertEqual(n1["workers"], 2)
            self.assertEqual(n1["engine"], "memory")
            self.assertGreaterEqual(n1["connections"], 1)       # this API connection
            self.assertGreaterEqual(n1["http_requests"], 1)
            ch = chan("info")
            clients = [await Native.open(self.server) for _ in range(3)]
            for c in clients:
                await c.result("subscribe", {"channel": ch})
            self.api.publish(ch, 1)
            for c in clients:
                await c.pubs(1)
            await asyncio.sleep(0.1)
            n2 = self.api.call("info", {})["nodes"][0]
            self.assertGreaterEqual(n2["websockets"], 3, n2)
            self.assertGreaterEqual(n2["connections"], 4, n2)
            self.assertGreater(n2["uptime_ms"], n1["uptime_ms"])
            self.assertGreaterEqual(n2["http_requests"], n1["http_requests"] + 2)
            self.assertGreaterEqual(n2["messages_in"], n1["messages_in"] + 6, "6 commands came in over /ws")
            self.assertGreaterEqual(n2["messages_out"], n1["messages_out"] + 3, "3 pubs went out over /ws")
            for c in clients:
                await c.close()
            deadline = time.monotonic() + 3 * SLOW
            while True:
                n3 = self.api.call("info", {})["nodes"][0]
                if n3["websockets"] <= n2["websockets"] - 3 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            self.assertLessEqual(n3["websockets"], n2["websockets"] - 3, "closed websockets still counted")
        run(go())

    # -- batch ----------------------------------------------------------------------

    def test_batch_mixed(self):
        ch = chan("batch")
        cmds = [
            {"method": "publish", "params": {"channel": ch, "data": {"a": 1}}},
            {"method": "publish", "params": {"data": 1}},                          # missing channel
            {"method": "history", "params": {"channel": ch}},
            {"method": "no_such_method", "params": {}},
            {"method": "publish", "params": {"channel": "bad name", "data": 1}},
            {"method": "publish", "params": {"channel": ch, "data": "x" * 2000}},  # too large
            {"method": "publish", "params": {"channel": ch}},                      # missing data
            {"method": "presence_stats", "params": {"channel": ch}},
            {"method": "publish", "params": {"channel": ch, "data": {"a": 2}}},
        ]
        r = self.api.call("batch", {"commands": cmds})
        self.assertEqual(set(r), {"replies"}, r)
        rep = r["replies"]
        self.assertEqual(len(rep), len(cmds), r)
        self.assertEqual(set(rep[0]), {"result"})
        self.assertEqual(rep[0]["result"]["offset"], 1)
        epoch = rep[0]["result"]["epoch"]
        expect_status = {1: 400, 3: 404, 4: 400, 5: 413, 6: 400}
        for i, st in expect_status.items():
            check_api_error(rep[i], st, f"batch reply {i} ({json.dumps(cmds[i])[:80]})")
        self.assertEqual(rep[2], {"result": {"epoch": epoch, "offset": 1,
                                             "publications": [{"offset": 1, "data": {"a": 1}}]}},
                         "commands run in order: history sees the publish before it")
        self.assertEqual(rep[7], {"result": {"num_clients": 0, "num_users": 0}})
        self.assertEqual(rep[8], {"result": {"offset": 2, "epoch": epoch}}, "failed commands publish nothing")

    def test_batch_1000_commands(self):
        ch = chan("batch")
        r = self.api.batch_publish(ch, [{"i": i} for i in range(1000)])
        self.assertEqual([x["offset"] for x in r], list(range(1, 1001)))
        h = self.api.call("history", {"channel": ch, "reverse": True, "limit": 1})
        self.assertEqual(h["publications"], [{"offset": 1000, "data": {"i": 999}}])

    def test_batch_more_than_1000_refused(self):
        ch = chan("batch")
        cmds = [{"method": "publish", "params": {"channel": ch, "data": i}} for i in range(1001)]
        resp = self.api.raw("/api/batch", json.dumps({"commands": cmds}))
        self.assertIn(resp.status, (400, 413), f"batch of 1001: {resp!r}")
        check_api_error(resp.json(), resp.status, "batch of 1001")
        self.assertEqual(self.api.call("history", {"channel": ch})["offset"], 0)

    def test_batch_bad_input(self):
        self.expect_error("batch", {"commands": {"method": "publish"}}, 400)
        self.expect_error("batch", {"commands": "publish"}, 400)
        self.expect_error("batch", {}, 400)

    # -- server commands ---------------------------------------------------------------

    def test_disconnect_and_unsubscribe_accept_a_target_that_is_not_connected(self):
        # (the effect on connected clients: test_channels.py test_server_api_unsubscribe_and_disconnect)
        self.assertEqual(self.api.call("disconnect", {"user": "alice"}), {})
        self.assertEqual(self.api.call("unsubscribe", {"user": "alice", "channel": "news"}), {})
        self.expect_error("disconnect", {}, 400)
        self.expect_error("unsubscribe", {"user": "alice"}, 400)


class TestApiBadInput(ApiBase):

    def test_missing_key_401(self):
        self.expect_error("publish", {"channel": chan(), "data": 1}, 401, auth=False)

    def test_wrong_key_401(self):
        self.api.key = "wrong"
        self.expect_error("publish", {"channel": chan(), "data": 1}, 401)
        self.api.key = API_KEY + "x"
        self.expect_error("info", {}, 401)
        self.api.key = API_KEY[:-1]
        self.expect_error("info", {}, 401)
        self.api.key = API_KEY
        self.expect_error("info", {}, 401, auth=False, headers={"Authorization": f"Bearer {API_KEY}"})
        self.expect_error("info", {}, 401, auth=False, headers={"X-API-Key": "wrong"})
        self.expect_error("info", {}, 401, auth=False, headers={"Authorization": ""})

    def test_nothing_published_without_key(self):
        ch = chan()
        self.expect_error("publish", {"channel": ch, "data": 1}, 401, auth=False)
        self.assertEqual(self.api.call("history", {"channel": ch})["offset"], 0)

    def test_not_post_405(self):
        for method in ("GET", "PUT", "DELETE"):
            with self.subTest(method=method):
                body = b"" if method != "PUT" else json.dumps({"channel": chan(), "data": 1})
                self.expect_error("publish", body, 405, method=method)

    def test_unknown_method_404(self):
        self.expect_error("no_such_method", {}, 404)
        self.expect_error("Publish", {"channel": chan(), "data": 1}, 404)

    def test_invalid_json_400_with_line_and_column(self):
        body = '{\n  "channel": "x",\n  "data": \n}'
        data = self.expect_error("publish", body, 400)
        msg = data["error"]
        self.assertRegex(msg, r"(?i)line\D{0,3}4\b", f"invalid JSON: the message should give line 4: {msg!r}")
        self.assertRegex(msg, r"(?i)col(umn)?\D{0,3}\d+", f"invalid JSON: the message should give a column: {msg!r}")
        for bad in ('{"channel": "x", "data": 1', "{'channel': 'x'}", '{"channel" "x"}', "nul", "\x00"):
            with self.subTest(body=bad):
                d = self.expect_error("publish", bad, 400)
                self.assertRegex(d["error"], r"(?i)line\D{0,3}\d+", d)

    def test_non_object_body_400(self):
        for body in ("[1,2]", '"string"', "42", "null", "true", "", "   "):
            with self.subTest(body=body):
                self.expect_error("publish", body, 400)

    def test_publish_bad_fields_400(self):
        self.expect_error("publish", {"data": 1}, 400)                         # missing channel
        self.expect_error("publish", {"channel": 5, "data": 1}, 400)           # wrong type
        self.expect_error("publish", {"channel": None, "data": 1}, 400)
        for bad in ("", "a b", "star*", "q?", "caf\u00e9", "x" * 300, "wild.>"):
            with self.subTest(channel=bad[:20]):
                self.expect_error("publish", {"channel": bad, "data": 1}, 400)
        self.expect_error("publish", {"channel": chan()}, 400)                 # missing data

    def test_data_too_large_413(self):
        ch = chan()
        data = self.expect_error("publish", {"channel": ch, "data": "x" * 2000}, 413)
        # the message names the size and the limit (2000 x + 2 quotes)
        self.assertEqual(data["error"], "publication is 2002 bytes, the limit is 1024 (channels.max_publication_size)")
        self.assertEqual(self.api.call("history", {"channel": ch})["offset"], 0)
        self.api.publish(ch, "x" * 500)

    def test_body_too_large_413(self):
        body = json.dumps({"channel": chan(), "data": "y" * (300 * 1024)})
        resp = self.api.raw("/api/publish", body)
        self.assertEqual(resp.status, 413, resp)
        check_api_error(resp.json(), 413, "body over http.max_body_size")

    def test_user_limited_channel_is_fine_for_the_backend(self):
        # the API is the backend: no user restrictions apply to it
        r = self.api.publish("dm:#alice,bob", {"text": "hi"})
        self.assertIn("offset", r)


class TestApiPublishAsSent(ApiBase):
    """A publish body in compact form (what JSON.stringify writes), or in
    that form but for whitespace between its tokens (Python's json.dumps),
    is read as sent, with no parse (core/json.h, api.c publish_as_sent);
    every answer and every stored byte must be what the same body gets
    when it is parsed. Each body goes three ways: as it is, with a newline
    after it (whitespace: read as sent when the body is), and - when it
    is a JSON object - with a member holding a real number added at its
    end (",\"zz\":0.5}": always parsed; errors before the end keep their
    line and column)."""

    CASES = [
        '{"channel":"C","data":{"t":1,"c":2,"s":3,"p":"xx"}}',
        '{"data":[1,[2],{"a":{"b":[]}}],"channel":"C"}',
        '{"channel":"C","data":"a\\"b\\\\c\\n\\t"}',
        '{"channel":"C","data":"\\u00e9\\u0001"}',
        '{"channel":"C","data":"\u00e9"}',
        '{"channel":"C","data":-12,"extra":{"x":null}}',
        '{"channel":"C","data":9223372036854775807}',
        '{"channel":"C","data":9223372036854775808}',
        '{"channel":"C","data":-0}',
        '{"channel":"C","data":1.50}',
        '{"channel":"C","data":{"channel":"elsewhere","data":2,"idempotency_key":""}}',
        '{"channel":"C","data":true,"idempotency_key":"k1"}',
        '{"channel":"C","data":false,"idempotency_key":"k1"}',
        '{"idempotency_key":"k2","data":"","channel":"C"}',
        '{"channel":"C","data":null,"idempotency_key":"k\\"q"}',
        '{"channel":"C","data":1,"idempotency_key":""}',
        '{"channel":"C","data":1,"idempotency_key":"' + "k" * 129 + '"}',
        '{"channel":"C","data":1,"idempotency_key":7}',
        '{"channel":"C"}',
        '{"channel":5,"data":1}',
        '{"channel":"C\\u0041","data":1}',
        '{"channel":"bad name","data":1}',
        '{"channel":"C","data":1,"data":2}',
        '{"channel":"C","data":{"a":1,"a":2}}',
        '{"channel":"C","data":"' + "y" * 2000 + '"}',
        '{"channel":"C","data":[1,}',
        '[{"channel":"C","data":1}]',
        # spaced: the data's dump drops the whitespace between tokens, never inside strings
        '{"channel": "C", "data": {"a": [1, 2, {"b": null}], "s": "x y, z: w", "e": "q\\" r"}}',
        ' \r\n{\n\t"channel" : "C" ,\r\n "data" : [ 1 , "a b" , { } , [ ] ]\n}',
        '{"channel": "C", "data": {"a": 1, "a": 2}}',
        '{"channel": "C", "data": [1, 2.5]}',
        '{"channel": "C", "data": "\u00e9 x"}',
        '{"channel": "C", "data": [1 2]}',
        '{"channel": "C", "data": tru e}',
        '{"channel": "C", "idempotency_key": "k3", "data": {"x": [ ]}}',
        '{"channel": "C", "idempotency_key": "k3", "data": {"x": []}}',
        '{"channel": "C" , "data" : 7 , "idempotency_key" : "' + "k" * 128 + '"}',
        '{"channel": "C", "data": 1} x',
        '{"channel": "C",}',
    ]

    @staticmethod
    def json_object(body):
        try:
            return isinstance(json.loads(body), dict)
        except ValueError:
            return False

    def test_bodies_answer_and_store_as_parsed(self):
        base = chan("as-sent")
        names = [base + s for s in ("-a", "-b", "-c")]
        for body in self.CASES:
            with self.subTest(body=body[:80]):
                ways = [body, body + "\n"]
                if body.rstrip().endswith("}") and self.json_object(body):
                    ways.append(body.rstrip()[:-1] + ',"zz":0.5}')
                got = []
                for name, b in zip(names, ways):
                    r = self.api.raw("/api/publish", b.replace('"C', '"' + name))
                    j = r.json()
                    if r.status == 200:
                        j.pop("epoch")
                    got.append((r.status, json.dumps(j).replace(name, base)))
                self.assertEqual(got, [got[0]] * len(got), body[:80])
        hist = []
        for name in names:
            h = self.api.raw("/api/history", json.dumps({"channel": name}))
            self.assertEqual(h.status, 200, h.body)
            hist.append(h.body.replace(h.json()["epoch"].encode(), b"E"))
        self.assertGreater(len(json.loads(hist[0])["publications"]), 12, hist[0])
        self.assertEqual(hist, [hist[0]] * 3)


class TestApiBoundOptions(ApiBase):
    """api.max_broadcast_channels and api.max_batch_commands, lowered: one more is
    refused with 400 naming the option and runs nothing; exactly the limit runs."""
    server_args = ApiBase.server_args + ("--api.max-broadcast-channels", "3", "--api.max-batch-commands", "2")

    def test_broadcast_over_the_option_refused(self):
        names = [chan("bc") for _ in range(4)]
        data = self.expect_error("broadcast", {"channels": names, "data": 1}, 400)
        self.assertIn("api.max_broadcast_channels", data["error"])
        self.assertEqual(self.api.call("history", {"channel": names[0]})["offset"], 0)
        r = self.api.call("broadcast", {"channels": names[:3], "data": 1})
        self.assertEqual(len(r["responses"]), 3)

    def test_batch_over_the_option_refused(self):
        ch = chan("bb")
        cmds = [{"method": "publish", "params": {"channel": ch, "data": i}} for i in range(3)]
        data = self.expect_error("batch", {"commands": cmds}, 400)
        self.assertIn("api.max_batch_commands", data["error"])
        self.assertEqual(self.api.call("history", {"channel": ch})["offset"], 0)
        self.assertEqual([x["offset"] for x in self.api.batch_publish(ch, [1, 2])], [1, 2])


class TestApiPresenceDisabled(HeraldTestCase):
    server_args = KEY_ARGS + ("--channels.presence", "false")

    def test_presence_404(self):
        api = Api(self.server)
        try:
            for m in ("presence", "presence_stats"):
                resp = api.raw(f"/api/{m}", json.dumps({"channel": "news"}))
                self.assertEqual(resp.status, 404, resp)
                check_api_error(resp.json(), 404, m)
        finally:
            api.close()


class TestGeneratedKey(unittest.TestCase):
    def test_generated_key_is_printed_and_works(self):
        with Herald() as srv:
            m = re.search(r"server API key \(generated[^)]*\): ([^\s\"]+)", srv.output())
            deadline = time.monotonic() + 5 * SLOW
            while m is None and time.monotonic() < deadline:
                time.sleep(0.05)
                m = re.search(r"server API key \(generated[^)]*\): ([^\s\"]+)", srv.output())
            self.assertIsNotNone(m, f"no generated API key in the log:\n{srv.output()}")
            key = m.group(1)
            self.assertGreaterEqual(len(key), 16, f"generated key {key!r} is short")
            api = Api(srv, key=key)
            try:
                self.assertEqual(api.publish("news", 1)["offset"], 1)
                api.key = "testkey"
                resp = api.raw("/api/info", "{}")
                self.assertEqual(resp.status, 401)
                check_api_error(resp.json(), 401, "wrong key")
            finally:
                api.close()


if __name__ == "__main__":
    main()
