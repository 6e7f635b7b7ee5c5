#!/usr/bin/env python3
"""Abuse limits ([limits], docs/security.md) against the real server.

  - connections per address: 10,000 connections from 127.0.0.1 against a
    limit of 100 — the first 100 are served, every other one is answered 503
    with a JSON body and closed, while 127.0.0.2 still connects and receives
    publications; closing one frees a place;
  - handshakes per second per address: a burst past the bucket is answered
    429 with Retry-After, another address is unaffected, and after the
    bucket refills the address connects again;
  - publish flood on the native protocol: past publishes_per_connection the
    client gets error 111 (temporary, "publish rate limit: retry in N ms")
    for each excess publish, exactly as many get through as the bucket
    holds, another client's deliveries keep their latency meanwhile, and
    after the refill the flooder may publish again;
  - publish flood on /ws/raw (no replies there): closed with 3009;
  - publishes per user: two connections of one user share one bucket,
    another user has their own;
  - rejected tokens: past auth_failures_per_ip an address is refused 429
    for auth_failure_ban, other addresses are not, expired tokens (the
    normal refresh flow) do not count, and the ban ends.

Slowloris headers cut at http.header_timeout are in test_http.py
(TestTimeouts.test_slowloris_gets_408); message size limits in test_channels.py
and test_ws_*.py.
"""

import asyncio
import json
import os
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SANITIZE, SLOW, HeraldTestCase, HttpConn, main, raise_nofile_limit  # noqa: E402
from herald_native import API_KEY, Api, Native, percentile, run  # noqa: E402
from test_auth import SECRET, conn_token  # noqa: E402

import websockets  # noqa: E402


def http_get(addr, source, path="/health", timeout=5.0):
    """One GET over a connection from `source`; returns (response, open HttpConn)."""
    s = socket.create_connection(addr, timeout=timeout * SLOW, source_address=(source, 0))
    c = HttpConn(addr, timeout=timeout, sock=s)
    return c.request("GET", path), c


class TestConnectionsPerIp(HeraldTestCase):
    LIMIT = 100
    server_args = ("--api-key", API_KEY, "--limits.connections-per-ip", str(LIMIT))

    @classmethod
    def setUpClass(cls):
        raise_nofile_limit()
        super().setUpClass()

    def test_one_address_is_capped_others_are_not(self):
        total = 2000 if SANITIZE else 10000
        kept, refused, bodies = [], 0, set()
        t0 = time.monotonic()
        try:
            for i in range(total):
                r, c = http_get(self.server.addr, "127.0.0.1")
                if r.status == 200:
                    kept.append(c)  # keep-alive: it stays open and counted
                    continue
                self.assertEqual(r.status, 503, r.body)
                self.assertEqual(r.header("Content-Type"), "application/json")
                self.assertIsNotNone(r.header("Retry-After"))
                body = r.json()
                bodies.add(body["error"])
                self.assertEqual(body["status"], 503)
                refused += 1
                c.close()
            took = time.monotonic() - t0
            sys.stderr.write(f"\n{total} connections from 127.0.0.1 in {took:.1f} s: {len(kept)} served, "
                             f"{refused} refused\n")
            self.assertEqual(len(kept), self.LIMIT)
            self.assertEqual(refused, total - self.LIMIT)
            self.assertEqual(bodies, {"too many connections from your address"})

            # another address connects, subscribes and receives while 127.0.0.1 is at its limit
            async def other():
                ws = await websockets.connect(self.server.ws_url("/ws/raw?channel=limits"), local_addr=("127.0.0.2", 0),
                                              open_timeout=10 * SLOW, ping_interval=None)
                await asyncio.sleep(0.1)
                api = Api(self.server)  # the backend too connects from another address here
                api.conn = HttpConn(self.server.addr, sock=socket.create_connection(
                    self.server.addr, timeout=5 * SLOW, source_address=("127.0.0.2", 0)))
                api.publish("limits", {"n": 1})
                api.close()
                msg = await asyncio.wait_for(ws.recv(), 5 * SLOW)
                await ws.close()
                return json.loads(msg)
            self.assertEqual(run(other()), {"n": 1})

            # one of 127.0.0.1's connections goes: one new one fits, the next does not
            kept.pop().close()
            for _ in range(50):  # the close reaches the server asynchronously
                r, c = http_get(self.server.addr, "127.0.0.1")
                if r.status == 200:
                    kept.append(c)
                    break
                c.close()
                time.sleep(0.02)
            self.assertEqual(r.status, 200)
            r, c = http_get(self.server.addr, "127.0.0.1")
            c.close()
            self.assertEqual(r.status, 503)
        finally:
            for c in kept:
                c.close()


class TestHandshakeRate(HeraldTestCase):
    server_args = ("--limits.handshakes-per-ip", "20", "--limits.handshake-burst-per-ip", "20")

    def test_burst_past_the_bucket_gets_429(self):
        codes, retry = [], set()
        for _ in range(60):
            r, c = http_get(self.server.addr, "127.0.0.3")
            c.close()
            codes.append(r.status)
            if r.status == 429:
                retry.add(r.header("Retry-After"))
                self.assertEqual(r.json()["error"], "too many new connections from your address")
        ok = codes.count(200)
        sys.stderr.write(f"\n60 quick connections from 127.0.0.3: {ok} served, {codes.count(429)} refused\n")
        self.assertEqual(codes.count(200) + codes.count(429), 60, codes)
        self.assertGreaterEqual(ok, 20)
        self.assertLess(ok, 60)
        self.assertEqual(codes[:20], [200] * 20)
        self.assertEqual(retry, {"1"})
        r, c = http_get(self.server.addr, "127.0.0.4")  # another address: its own bucket
        c.close()
        self.assertEqual(r.status, 200)
        time.sleep(1.1)  # 20 tokens per second
        r, c = http_get(self.server.addr, "127.0.0.3")
        c.close()
        self.assertEqual(r.status, 200)


class TestPublishFlood(HeraldTestCase):
    RATE = 20
    server_args = ("--api-key", API_KEY, "--channels.publish", "anyone", "--limits.publishes-per-connection", str(RATE),
                   "--limits.publish-burst", str(RATE))

    def test_native_flood_gets_111_and_others_keep_their_latency(self):
        async def scenario():
            flooder = await Native.open(self.server)
            watcher = await Native.open(self.server)
            await watcher.result("subscribe", {"channel": "calm"})
            await flooder.result("subscribe", {"channel": "flood"})
            lat = []
            stop = asyncio.Event()

            async def calm_publisher():
                api = Api(self.server)
                try:
                    n = 0
                    while not stop.is_set():
                        t = time.monotonic()
                        await asyncio.get_event_loop().run_in_executor(None, api.publish, "calm", {"n": n})
                        p = (await watcher.pubs(1, channel="calm"))[0]
                        self.assertEqual(p["data"], {"n": n})
                        lat.append(time.monotonic() - t)
                        n += 1
                        await asyncio.sleep(0.01)
                finally:
                    api.close()

            calm = asyncio.ensure_future(calm_publisher())
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            replies = []
            for f in range(5):  # 500 publishes in 5 frames of 100, numbered across frames
                sent = await flooder.send_frame([("publish", {"channel": "flood", "data": {"i": f * 100 + i}})
                                                 for i in range(100)])
                replies += [await asyncio.wait_for(f, 10 * SLOW) for _, f in sent]
            took = time.monotonic() - t0
            ok = [r for r in replies if "result" in r]
            errs = [r["error"] for r in replies if "error" in r]
            await asyncio.sleep(0.3)
            stop.set()
            await calm
            # the refill while the flood was sent allows a few more than the burst
            allowed = self.RATE + int(took * self.RATE) + 1
            sys.stderr.write(f"\nflood: 500 publishes in {took:.2f} s, {len(ok)} accepted, {len(errs)} refused; "
                             f"calm channel latency p50 {percentile(lat, 50) * 1000:.1f} ms p99 "
                             f"{percentile(lat, 99) * 1000:.1f} ms over {len(lat)}\n")
            self.assertGreaterEqual(len(ok), self.RATE)
            self.assertLessEqual(len(ok), allowed)
            self.assertEqual(len(ok) + len(errs), 500)
            for e in errs:
                self.assertEqual((e["code"], e["message"], e["temporary"]), (111, "too many requests", True))
                self.assertRegex(e["detail"], r"^publish rate limit: retry in \d+ ms$")
            # the accepted ones were delivered, in order, and nothing else
            got = await flooder.pubs(len(ok), channel="flood")
            self.assertEqual([p["data"]["i"] for p in got], sorted(p["data"]["i"] for p in got))
            await flooder.quiet(0.2)
            self.assertGreater(len(lat), 5)
            self.assertLess(percentile(lat, 99), 0.25 * SLOW)
            # a second later the bucket is full again
            await asyncio.sleep(1.0)
            await flooder.result("publish", {"channel": "flood", "data": "again"})
            await flooder.ws.close()
            await watcher.ws.close()
        run(scenario())

    def test_raw_flood_is_closed_with_3009(self):
        async def scenario():
            url = self.server.ws_url("/ws/raw?channel=rawflood")
            watcher = await websockets.connect(url, ping_interval=None, open_timeout=10 * SLOW)
            ws = await websockets.connect(url, ping_interval=None, open_timeout=10 * SLOW)
            for i in range(self.RATE * 3):
                try:
                    await ws.send(json.dumps({"i": i}))
                except websockets.exceptions.ConnectionClosed:
                    break
            try:
                while True:  # the flooder's own copies may or may not come before the close
                    await asyncio.wait_for(ws.recv(), 5 * SLOW)
            except websockets.exceptions.ConnectionClosed:
                pass
            got = []
            try:
                while True:
                    got.append(json.loads(await asyncio.wait_for(watcher.recv(), 0.5 * SLOW))["i"])
            except asyncio.TimeoutError:
                pass
            await watcher.close()
            return ws.close_code, ws.close_reason, got
        code, reason, got = run(scenario())
        self.assertEqual(code, 3009)
        self.assertIn("publishing too fast", reason)
        # what was accepted before the limit reached the other subscriber, in order
        self.assertGreaterEqual(len(got), self.RATE)
        self.assertLess(len(got), self.RATE * 3)
        self.assertEqual(got, list(range(len(got))))


async def native_from(server, source, **connect):
    """A native-protocol connection from `source`; connect with `connect` params; returns (client, reply)."""
    ws = await websockets.connect(server.ws_url("/ws"), local_addr=(source, 0), ping_interval=None,
                                  open_timeout=10 * SLOW, max_size=None)
    c = Native(ws)
    return c, await c.call("connect", connect)


class TestPublishesPerUser(HeraldTestCase):
    server_args = ("--token-hmac-secret", SECRET, "--channels.publish", "authenticated", "--limits.publishes-per-user", "10",
                   "--limits.publish-burst", "10")

    def test_one_bucket_per_user(self):
        async def scenario():
            a1, r1 = await native_from(self.server, "127.0.0.1", token=conn_token("alice"))
            a2, r2 = await native_from(self.server, "127.0.0.1", token=conn_token("alice"))
            b, r3 = await native_from(self.server, "127.0.0.1", token=conn_token("bob"))
            for r in (r1, r2, r3):
                self.assertIn("result", r, r)
            async def burst(c, n):
                sent = await c.send_frame([("publish", {"channel": "pu", "data": i}) for i in range(n)])
                replies = [await asyncio.wait_for(f, 10 * SLOW) for _, f in sent]
                return sum("result" in r for r in replies), [r["error"] for r in replies if "error" in r]
            t0 = time.monotonic()
            ok1, e1 = await burst(a1, 8)
            ok2, e2 = await burst(a2, 8)
            took = time.monotonic() - t0
            okb, eb = await burst(b, 8)
            for e in e1 + e2:
                self.assertEqual(e["code"], 111)
            self.assertGreaterEqual(ok1 + ok2, 10)
            self.assertLessEqual(ok1 + ok2, 10 + int(took * 10) + 1)
            self.assertEqual((okb, eb), (8, []))  # bob's own bucket
            for c in (a1, a2, b):
                await c.ws.close()
        run(scenario())


class TestBadTokenBan(HeraldTestCase):
    server_args = ("--token-hmac-secret", SECRET, "--limits.auth-failures-per-ip", "5",
                   "--limits.auth-failure-window", "30s", "--limits.auth-failure-ban", "2s")

    def test_ban_after_rejected_tokens(self):
        async def scenario():
            # expired tokens are the refresh flow: they never count
            for _ in range(8):
                c, r = await native_from(self.server, "127.0.0.7", token=conn_token("eve", ttl=-120))
                self.assertEqual(r["error"]["code"], 109, r)
                await c.ws.close()
            c, r = await native_from(self.server, "127.0.0.7", token=conn_token("eve"))
            self.assertIn("result", r, r)
            await c.ws.close()
            # five forged tokens from 127.0.0.5
            forged = conn_token("mallory")[:-4] + "AAAA"
            for _ in range(5):
                c, r = await native_from(self.server, "127.0.0.5", token=forged)
                self.assertEqual(r["error"]["code"], 101, r)
                await c.ws.close()
        run(scenario())
        r, c = http_get(self.server.addr, "127.0.0.5")
        c.close()
        self.assertEqual(r.status, 429, r.body)
        self.assertEqual(r.json()["error"], "too many rejected tokens from your address")
        self.assertEqual(r.header("Retry-After"), "2")
        # the one warning of the ban names the address, so an operator can act on it
        bans = [ln for ln in self.server.output().splitlines() if "rejected tokens within" in ln]
        self.assertEqual(len(bans), 1, bans)
        self.assertIn("client address 127.0.0.5 presented 5 rejected tokens", bans[0])
        # an SSE request with a bad token from another address counts for that one only
        r, c = http_get(self.server.addr, "127.0.0.6", "/sse?channel=x&token=" + forged_token())
        c.close()
        self.assertEqual(r.status, 401)
        r, c = http_get(self.server.addr, "127.0.0.6")
        c.close()
        self.assertEqual(r.status, 200)
        time.sleep(2.2)
        r, c = http_get(self.server.addr, "127.0.0.5")
        c.close()
        self.assertEqual(r.status, 200)


def forged_token():
    return conn_token("mallory")[:-4] + "AAAA"


if __name__ == "__main__":
    main()
