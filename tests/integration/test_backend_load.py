#!/usr/bin/env python3
"""test_backend_load - a slow backend does not hold other clients
(docs/backend.md "Timing"): with one worker and a connect hook that takes
2 s, 70 clients connect at once. The worker's proxy.max_inflight (64) calls
wait for the backend while the excess is answered 116 ("too many calls in
flight") at once instead of queueing; meanwhile a client with a token (no
hook) on the same worker keeps getting publications with low latency and
/health keeps answering fast (Prober). Then every waiting connect is
answered and the proxy counters in /api/info say what happened.
"""
import asyncio
import json
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from herald_testlib import SLOW, Prober, main  # noqa: E402
from herald_native import Native, run  # noqa: E402
from test_backend_connect import SECRET, BackendCase, api_call, token  # noqa: E402
import websockets  # noqa: E402

SLOW_MS = 2000
CLIENTS = 70


class TestSlowBackend(BackendCase):
    server_workers = 1

    @classmethod
    def proxy_args(cls, be):
        return ["--proxy.connect-url", be.url("/connect"), "--proxy.connect-timeout", "10s",
                "--auth.token-hmac-secret", SECRET]

    def test_slow_backend_holds_nobody_and_excess_gets_116(self):
        self.backend.script(connect={"delay_ms": SLOW_MS, "json": {"result": {"user": "u"}}})

        async def go():
            watcher = await Native.open(self.server, token=token("w"))  # a token: no hook
            self.assertEqual(watcher.connect_result["user"], "w")
            await watcher.result("subscribe", {"channel": "live"})
            socks = [await websockets.connect(self.server.ws_url("/ws"), ping_interval=None,
                                              open_timeout=10 * SLOW, close_timeout=1) for _ in range(CLIENTS)]
            t0 = time.monotonic()
            for s in socks:
                await s.send('{"id":1,"connect":{}}')

            async def answer(s):
                return json.loads(await s.recv()), time.monotonic() - t0

            tasks = [asyncio.ensure_future(answer(s)) for s in socks]
            lat = []
            for i in range(15):  # while the backend sleeps
                api_call(self.server, "publish", {"channel": "live", "data": {"t": time.time()}})
                pub = (await watcher.pubs(1, channel="live", timeout=5))[0]
                lat.append(time.time() - pub["data"]["t"])
                await asyncio.sleep(0.05)
            answers = await asyncio.gather(*tasks)
            full = [(a, t) for a, t in answers if a.get("error", {}).get("code") == 116]
            ok = [(a, t) for a, t in answers if "result" in a]
            self.assertEqual(len(full) + len(ok), CLIENTS, answers[:3])
            self.assertGreaterEqual(len(full), CLIENTS - 64)
            self.assertGreaterEqual(len(ok), 32)
            for a, t in full:  # at once, not after the backend
                self.assertTrue(a["error"]["temporary"])
                self.assertLess(t, 1.0 * SLOW, a)
            for a, t in ok:
                self.assertGreater(t, SLOW_MS / 1000 * 0.9)
            self.assertLess(max(lat), 0.5 * SLOW, lat)
            for s in socks:
                await s.close()
            await watcher.close()

        with Prober(self.server.addr, pid=self.server.proc.pid) as probe:
            run(go())
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), 0.25 * SLOW, probe.describe())
        info = api_call(self.server, "info")["nodes"][0]["proxy"]
        self.assertGreaterEqual(info["failures"]["full"], CLIENTS - 64)
        self.assertEqual(info["inflight"], 0)


if __name__ == "__main__":
    main()
