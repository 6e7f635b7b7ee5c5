#!/usr/bin/env python3
"""test_backend_subdata - a native subscribe command's `data` reaches the
subscribe hook (docs/protocol.md "subscribe", docs/backend.md): a real
herald whose namespace "hs" has proxy_subscribe, a scripted backend process
(tests/tools/proxy_backend.py) on loopback:
- JSON and MessagePack clients' data arrives in the hook request as sent
  (objects, null, strings); a subscribe without data has no "data" member;
- a connect's subs go through the hook without data (the connect's data is
  the connect hook's, not the subscribe hook's);
- data larger than websocket.max_message_size: the frame is refused (1009)
  and the backend is not called.
"""
import asyncio
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from herald_testlib import main  # noqa: E402
from herald_native import Native, run  # noqa: E402
from test_backend_connect import BackendCase  # noqa: E402

ALLOW = {"json": {"result": {}}}


class TestSubscribeData(BackendCase):
    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.subscribe-url", be.url("/subscribe"), "--namespace.hs.proxy-subscribe", "true",
                "--websocket.max-message-size", "4KiB"]

    def setUp(self):
        super().setUp()
        self.backend.script(subscribe=ALLOW)

    def hook_bodies(self):
        return [e["body"] for e in self.backend.log("/subscribe")]

    def test_json_client_data_reaches_the_hook(self):
        async def go():
            c = await Native.open(self.server)
            await c.result("subscribe", {"channel": "hs:a", "data": {"invite": "x7", "n": [1, None, True]}})
            await c.result("subscribe", {"channel": "hs:b", "data": None})
            await c.result("subscribe", {"channel": "hs:c", "data": "plain"})
            await c.result("subscribe", {"channel": "hs:d"})
            await c.close()
        run(go())
        bodies = {b["channel"]: b for b in self.hook_bodies()}
        self.assertEqual(set(bodies), {"hs:a", "hs:b", "hs:c", "hs:d"})
        self.assertEqual(bodies["hs:a"]["data"], {"invite": "x7", "n": [1, None, True]})
        self.assertIn("data", bodies["hs:b"])
        self.assertIsNone(bodies["hs:b"]["data"])
        self.assertEqual(bodies["hs:c"]["data"], "plain")
        self.assertNotIn("data", bodies["hs:d"], "no data sent: none forwarded")

    def test_msgpack_client_data_reaches_the_hook(self):
        async def go():
            c = await Native.open(self.server, encoding="msgpack")
            await c.result("subscribe", {"channel": "hs:m", "data": {"k": [1, 2.5, "v"]}})
            await c.close()
        run(go())
        self.assertEqual([(b["channel"], b["data"]) for b in self.hook_bodies()], [("hs:m", {"k": [1, 2.5, "v"]})])

    def test_connect_subs_carry_no_subscribe_data(self):
        async def go():
            c = await Native.open(self.server, data={"for": "connect"}, subs=["hs:s"])
            await c.close()
        run(go())
        bodies = self.hook_bodies()
        self.assertEqual([b["channel"] for b in bodies], ["hs:s"])
        self.assertNotIn("data", bodies[0])

    def test_data_over_the_message_limit_never_reaches_the_backend(self):
        async def go():
            c = await Native.open(self.server)
            futs = await c.send_frame([("subscribe", {"channel": "hs:big", "data": "x" * 8192})])
            await c.ws.wait_closed()
            await asyncio.gather(*(f for _, f in futs), return_exceptions=True)  # no reply: the frame was refused
            return c.ws.close_code
        self.assertEqual(run(go()), 1009)
        self.assertEqual(self.hook_bodies(), [])


if __name__ == "__main__":
    main()
