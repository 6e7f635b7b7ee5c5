#!/usr/bin/env python3
"""test_ops_limits - the limits dimension of the permission matrix: a
publication over channels.max_publication_size and a publish to a pattern
are refused by every front end that publishes, each in its own wire form
and with the same words (the publish operation's detail, src/ops/ops.c):

  ws-json, ws-msgpack, poll, stream   error 115 / 107 with the detail
  raw                                 close 1009 / 3503 with the detail as the reason
  api                                 413 / 400 with the detail as "error"

Nothing refused is delivered: a subscriber of the channel sees only the
publication that fits, sent last by each front end.
"""

import asyncio
import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, main  # noqa: E402
from herald_native import API_KEY, ApiTestCase, Native, close_reader, run  # noqa: E402
from test_permission_matrix import EmuSession  # noqa: E402

import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

LIMIT = 64
BIG = {"m": "x" * 100}
BIG_LEN = len(json.dumps(BIG, separators=(",", ":")))
TOO_BIG = f"publication is {BIG_LEN} bytes, the limit is {LIMIT} (channels.max_publication_size)"
PATTERN = "cannot publish to a pattern"


def chan(front):
    return f"lim-{front}-{os.getpid()}"


class TestPublishLimitsOnEveryFrontEnd(ApiTestCase):
    server_args = ("--api-key", API_KEY, "--channels.max-publication-size", str(LIMIT),
                   "--channels.allow-publish", "true", "--channels.publish", "anyone")

    def test_native(self):
        async def go():
            for enc in ("json", "msgpack"):
                ch = chan(enc)
                c = await Native.open(self.server, encoding=enc)
                err = await c.error("publish", {"channel": ch, "data": BIG}, code=115)
                self.assertEqual(err["detail"], TOO_BIG, enc)
                err = await c.error("publish", {"channel": ch + ".*", "data": 1}, code=107)
                self.assertEqual(err["detail"], PATTERN, enc)
                await close_reader(c)
        run(go())

    def test_poll_and_stream(self):
        for front in ("poll", "stream"):
            s = EmuSession(self.server, front, "anonymous")
            try:
                ch = chan(front)
                err = s.call("publish", {"channel": ch, "data": BIG}).get("error") or {}
                self.assertEqual((err.get("code"), err.get("detail")), (115, TOO_BIG), front)
                err = s.call("publish", {"channel": ch + ".*", "data": 1}).get("error") or {}
                self.assertEqual((err.get("code"), err.get("detail")), (107, PATTERN), front)
            finally:
                s.close()

    def test_raw(self):
        async def go():
            ch = chan("raw")
            for name, msg, want in ((ch, BIG, (1009, TOO_BIG)), (ch + ".*", {"m": 1}, (3503, PATTERN))):
                url = self.server.ws_url("/ws/raw?" + urllib.parse.urlencode({"channel": name}))
                ws = await websockets.connect(url, open_timeout=10 * SLOW, ping_interval=None)
                await ws.send(json.dumps(msg))
                with self.assertRaises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5 * SLOW)
                self.assertEqual((ws.close_code, ws.close_reason), want, name)
        run(go())

    def test_api(self):
        ch = chan("api")
        data = self.api.call("publish", {"channel": ch, "data": BIG}, expect=413)
        self.assertEqual(data["error"], TOO_BIG)
        data = self.api.call("publish", {"channel": ch + ".*", "data": 1}, expect=400)
        self.assertEqual(data["error"], PATTERN)
        data = self.api.call("broadcast", {"channels": [ch, ch + ".>"], "data": 1}, expect=400)
        self.assertEqual(data["error"], PATTERN)

    def test_nothing_refused_is_delivered(self):
        async def go():
            ch = chan("deliv")
            w = await Native.open(self.server)
            await w.result("subscribe", {"channel": ch})
            c = await Native.open(self.server)
            await c.error("publish", {"channel": ch, "data": BIG}, code=115)
            self.api.call("publish", {"channel": ch, "data": BIG}, expect=413)
            url = self.server.ws_url("/ws/raw?" + urllib.parse.urlencode({"channel": ch}))
            async with websockets.connect(url, open_timeout=10 * SLOW, ping_interval=None) as ws:
                await ws.send(json.dumps(BIG))
                with self.assertRaises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5 * SLOW)
            await c.result("publish", {"channel": ch, "data": {"m": 1}})
            pubs = await w.pubs(1, channel=ch)
            self.assertEqual(pubs[0]["data"], {"m": 1})
            await w.quiet(0.3)
            await close_reader(c)
            await close_reader(w)
        run(go())


if __name__ == "__main__":
    main()
