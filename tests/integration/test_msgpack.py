#!/usr/bin/env python3
"""The native protocol's MessagePack encoding (docs/protocol.md, "MessagePack
encoding") against the real herald binary, with Debian's python3-msgpack and
python3-websockets as the client.

Covers: subprotocol negotiation (herald.msgpack, herald.json, none), every
reply and push as MessagePack maps in binary frames, several commands per
frame, JSON and MessagePack subscribers sharing a channel (each gets the same
data, in its own encoding, exactly once and in order, also with
permessage-deflate), recovery, the error object, and the frames the server
refuses (text frames, malformed MessagePack, binary publication data: close
3501).
"""

import asyncio
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import main  # noqa: E402
from herald_native import API_KEY, ApiTestCase, Native, check_error, run  # noqa: E402

import msgpack  # noqa: E402

_seq = [0]


def chan(prefix="mp"):
    _seq[0] += 1
    return f"{prefix}:{os.getpid()}-{_seq[0]}"


# JSON values that must survive JSON -> MessagePack -> Python unchanged
VALUES = [
    {"text": "hi", "n": 1},
    "plain string",
    "unicode: \u00e9\u4e2d\U0001F600",
    0, -1, 2**31, -(2**40), 2**62,
    1.5, -0.25,
    True, False, None,
    [1, [2, [3, {"deep": []}]]],
    {},
    {"nested": {"list": [1, "a", None, True], "f": 3.25}},
]


class Base(ApiTestCase):
    server_args = ("--api-key", API_KEY, "--channels.publish", "anyone", "--channels.history-size", "100")


class TestMsgpack(Base):
    def test_negotiation(self):
        async def go():
            mp = await Native.open(self.server, encoding="msgpack")
            self.assertEqual(mp.ws.subprotocol, "herald.msgpack")
            self.assertIsInstance(mp.connect_result["client"], str)
            js = await Native.open(self.server, subprotocols=["herald.json"])
            self.assertEqual(js.ws.subprotocol, "herald.json")
            plain = await Native.open(self.server)
            self.assertIsNone(plain.ws.subprotocol)  # no subprotocol: JSON
            # a client offering both gets the server's first choice, JSON
            both = await Native.open(self.server, subprotocols=["herald.msgpack", "herald.json"])
            self.assertEqual(both.ws.subprotocol, "herald.json")
            for c in (mp, js, plain, both):
                await c.close()
        run(go())

    def test_round_trip_of_every_json_value_kind(self):
        async def go():
            ch = chan()
            c = await Native.open(self.server, encoding="msgpack")
            sub = await c.result("subscribe", {"channel": ch})
            self.assertEqual(sub["channel"], ch)
            self.assertEqual(sub["offset"], 0)
            self.assertIsInstance(sub["epoch"], str)
            for v in VALUES:
                r = await c.result("publish", {"channel": ch, "data": v})
                self.assertIsInstance(r["offset"], int)
            pubs = await c.pubs(len(VALUES))
            self.assertEqual([p["data"] for p in pubs], VALUES)
            self.assertEqual([p["offset"] for p in pubs], list(range(1, len(VALUES) + 1)))
            self.assertEqual({p["channel"] for p in pubs}, {ch})
            # and the server API hands the same values back as JSON
            h = self.api.call("history", {"channel": ch})
            self.assertEqual([p["data"] for p in h["publications"]], VALUES)
            await c.close()
        run(go())

    def test_json_and_msgpack_subscribers_share_a_channel(self):
        async def go():
            ch = chan()
            subs = []
            for i in range(6):
                enc = "msgpack" if i % 2 else "json"
                compression = "deflate" if i >= 4 else None
                c = await Native.open(self.server, encoding=enc, compression=compression)
                await c.result("subscribe", {"channel": ch})
                subs.append(c)
            pub_mp = await Native.open(self.server, encoding="msgpack")
            n = 200
            for i in range(n):
                data = {"i": i, "pad": "x" * (i % 7) * 30}  # some above the deflate threshold
                if i % 2:
                    await pub_mp.result("publish", {"channel": ch, "data": data})
                else:
                    self.api.publish(ch, data)
            for k, c in enumerate(subs):
                pubs = await c.pubs(n, timeout=20)
                self.assertEqual([p["offset"] for p in pubs], list(range(1, n + 1)), f"subscriber {k}")
                self.assertEqual([p["data"]["i"] for p in pubs], list(range(n)), f"subscriber {k}")
                await c.quiet(0.2)
            for c in subs + [pub_mp]:
                await c.close()
        run(go())

    def test_several_commands_in_one_frame(self):
        async def go():
            ch = chan()
            c = await Native.open(self.server, encoding="msgpack")
            futs = await c.send_frame([("subscribe", {"channel": ch}), ("ping", {}),
                                       ("publish", {"channel": ch, "data": [1]}), ("history", {"channel": ch})])
            replies = [await f for _, f in futs]
            self.assertEqual([r["id"] for r in replies], [cid for cid, _ in futs])
            self.assertEqual(replies[1]["result"], {})
            self.assertEqual(replies[3]["result"]["publications"], [{"offset": 1, "data": [1]}])
            # the four replies came back in one binary frame, four maps
            self.assertTrue(any(len(items) == 4 and all("id" in o for o in items) for items in c.msgpack_frames),
                            c.msgpack_frames)
            await c.close()
        run(go())

    def test_recovery(self):
        async def go():
            ch = chan()
            c = await Native.open(self.server, encoding="msgpack")
            first = await c.result("subscribe", {"channel": ch})
            await c.close()
            for i in range(20):
                self.api.publish(ch, i)
            c = await Native.open(self.server, encoding="msgpack")
            r = await c.result("subscribe", {"channel": ch, "recover": True, "epoch": first["epoch"],
                                             "offset": first["offset"]})
            self.assertIs(r["recovered"], True)
            self.assertEqual([p["data"] for p in r["publications"]], list(range(20)))
            await c.close()
        run(go())

    def test_error_object(self):
        async def go():
            c = await Native.open(self.server, encoding="msgpack")
            err = await c.error("subscribe", {"channel": "bad name"}, code=107)
            check_error(err, 107)
            await c.error("unsubscribe", {"channel": chan()}, code=113)
            await c.error("no_such_method", {}, code=104)
            await c.close()
        run(go())


class TestMsgpackRefusals(Base):
    async def expect_3501(self, payload):
        c = await Native.open(self.server, encoding="msgpack")
        await c.ws.send(payload)
        await asyncio.wait_for(c.closed.wait(), 5)
        self.assertEqual(c.ws.close_code, 3501, f"{payload!r}: close {c.ws.close_code} {c.ws.close_reason!r}")
        return c.ws.close_reason

    def test_text_frame_on_msgpack_closes_3501(self):
        reason = run(self.expect_3501('{"id":1,"ping":{}}'))
        self.assertIn("text", reason)

    def test_malformed_frames_close_3501(self):
        good = msgpack.packb({"id": 1, "ping": {}})
        for payload in (good[:-1],                                   # truncated map
                        good + b"\xc1",                              # trailing byte (never used)
                        msgpack.packb([1, 2, 3]),                    # not a map
                        msgpack.packb(42),
                        msgpack.packb({"id": 2, "publish": {"channel": "x", "data": b"\x00\x01"}},
                                      use_bin_type=True),            # bin data: refused (docs)
                        b"\x81\xa2id\xd9\x03\xff\xfe\xfd"):          # invalid UTF-8 str
            with self.subTest(payload=payload[:20]):
                run(self.expect_3501(payload))

    def test_other_clients_unaffected(self):
        async def go():
            ch = chan()
            ok = await Native.open(self.server, encoding="msgpack")
            await ok.result("subscribe", {"channel": ch})
            await self.expect_3501(b"\x81")
            self.api.publish(ch, "still here")
            self.assertEqual((await ok.pubs(1))[0]["data"], "still here")
            await ok.close()
        run(go())


if __name__ == "__main__":
    main()
