#!/usr/bin/env python3
"""/ws/echo with an independent, real client: Debian's python3-websockets
(10.4, asyncio "legacy" client API), with and without permessage-deflate.

Covers echo of text and binary messages from 0 bytes to 16 MiB, fragmented
messages, ordering over 100 messages, concurrent clients, subprotocol
negotiation, heartbeat / idle timeout, and graceful shutdown (close 1001).
"""

import asyncio
import os
import signal
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, SLOW, Herald, HeraldTestCase,  # noqa: E402
                            RawWS, WSClosed, dump_output, main)

import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

KiB = 1024
MiB = 1024 * 1024

SIZES = [0, 1, 125, 126, 65535, 65536, MiB]


def run(coro, timeout=60):
    async def bounded():
        return await asyncio.wait_for(coro, timeout * SLOW)
    return asyncio.run(bounded())


def text_of(n):
    """A str of exactly n UTF-8 bytes (mixing 1-, 2- and 3-byte characters)."""
    unit = "a\u00e9\u20acb"  # 1 + 2 + 3 + 1 = 7 bytes
    s = unit * (n // 7)
    return s + "x" * (n - len(s.encode()))


class EchoMixin:
    compression = None

    def connect(self, **kw):
        kw.setdefault("compression", self.compression)
        kw.setdefault("max_size", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("close_timeout", 5)
        kw.setdefault("open_timeout", 10 * SLOW)
        return websockets.connect(self.server.ws_url("/ws/echo"), **kw)

    def check_extensions(self, ws):
        names = [type(e).__name__ for e in ws.extensions]
        if self.compression == "deflate":
            self.assertIn("PerMessageDeflate", names, "permessage-deflate was not negotiated")
        else:
            self.assertEqual(names, [])

    def test_echo_text_sizes(self):
        async def go():
            async with self.connect() as ws:
                self.check_extensions(ws)
                for n in SIZES:
                    msg = text_of(n)
                    await ws.send(msg)
                    got = await ws.recv()
                    self.assertIsInstance(got, str, f"text message of {n} bytes came back as binary")
                    self.assertEqual(len(got.encode()), n)
                    self.assertEqual(got, msg)
        run(go())

    def test_echo_binary_sizes(self):
        async def go():
            async with self.connect() as ws:
                for n in SIZES:
                    msg = os.urandom(n)
                    await ws.send(msg)
                    got = await ws.recv()
                    self.assertIsInstance(got, bytes, f"binary message of {n} bytes came back as text")
                    self.assertEqual(len(got), n)
                    self.assertEqual(got, msg)
        run(go())

    def test_echo_16mib(self):
        # the default websocket.echo_max_message_size is 16 MiB: exactly that passes
        async def go():
            async with self.connect() as ws:
                if self.compression == "deflate":
                    msg = (os.urandom(6 * MiB).hex() + "abcd" * MiB)[:16 * MiB]
                    self.assertEqual(len(msg.encode()), 16 * MiB)
                    await ws.send(msg)
                    got = await ws.recv()
                    self.assertIsInstance(got, str)
                else:
                    msg = os.urandom(16 * MiB)
                    await ws.send(msg)
                    got = await ws.recv()
                    self.assertIsInstance(got, bytes)
                self.assertEqual(len(got), len(msg))
                self.assertTrue(got == msg, "16 MiB echo differs")
        run(go(), timeout=90)

    def test_fragmented_text(self):
        async def go():
            async with self.connect() as ws:
                parts = ["fragment one, ", "fragment \u20ac two, ", "", "fragment three" * 1000]

                async def frags():
                    for p in parts:
                        yield p
                        await asyncio.sleep(0.01)
                await ws.send(frags())
                got = await ws.recv()
                self.assertEqual(got, "".join(parts))
        run(go())

    def test_fragmented_binary(self):
        async def go():
            async with self.connect() as ws:
                parts = [os.urandom(n) for n in (1, 200, 70000, 0, 5)]
                await ws.send(parts)  # a sync iterable is sent as fragments too
                got = await ws.recv()
                self.assertEqual(got, b"".join(parts))
        run(go())

    def test_100_messages_in_order(self):
        async def go():
            async with self.connect() as ws:
                msgs = [f"message #{i:03d} " + "x" * (i * 37) for i in range(100)]
                for i, m in enumerate(msgs):
                    await ws.send(m if i % 2 == 0 else m.encode())
                for i, m in enumerate(msgs):
                    got = await ws.recv()
                    want = m if i % 2 == 0 else m.encode()
                    self.assertEqual(got, want, f"message {i} out of order or altered")
        run(go())

    def test_two_concurrent_clients(self):
        async def client(tag, n):
            async with self.connect() as ws:
                async def sender():
                    for i in range(n):
                        await ws.send(f"{tag}-{i}-" + tag * (i % 50))
                        if i % 10 == 0:
                            await asyncio.sleep(0)
                got = []

                async def receiver():
                    for _ in range(n):
                        got.append(await ws.recv())
                await asyncio.gather(sender(), receiver())
                self.assertEqual(got, [f"{tag}-{i}-" + tag * (i % 50) for i in range(n)])

        async def go():
            await asyncio.gather(client("A", 200), client("B", 200))
        run(go())

    def test_ping_from_client(self):
        async def go():
            async with self.connect() as ws:
                waiter = await ws.ping(b"client ping")
                await asyncio.wait_for(waiter, 5 * SLOW)
                latency = ws.latency if hasattr(ws, "latency") else 0
                self.assertGreaterEqual(latency, 0)
        run(go())

    def test_client_close_code(self):
        async def go():
            async with self.connect() as ws:
                await ws.send("bye")
                self.assertEqual(await ws.recv(), "bye")
                await ws.close(4001, "custom")
                self.assertEqual(ws.close_code, 4001)
        run(go())


class TestEchoPlain(EchoMixin, HeraldTestCase):
    compression = None


class TestEchoDeflate(EchoMixin, HeraldTestCase):
    compression = "deflate"


class TestSubprotocols(HeraldTestCase):
    server_args = ("--websocket.subprotocols", "chat,superchat")

    def test_server_preference(self):
        async def go():
            async with websockets.connect(self.server.ws_url(), subprotocols=["superchat", "chat"],
                                          compression=None) as ws:
                self.assertEqual(ws.subprotocol, "chat")
                await ws.send("hi")
                self.assertEqual(await ws.recv(), "hi")
        run(go())

    def test_single_match(self):
        async def go():
            async with websockets.connect(self.server.ws_url(), subprotocols=["nope", "superchat"]) as ws:
                self.assertEqual(ws.subprotocol, "superchat")
        run(go())

    def test_no_match(self):
        async def go():
            async with websockets.connect(self.server.ws_url(), subprotocols=["nope"]) as ws:
                self.assertIsNone(ws.subprotocol)
                await ws.send(b"ok")
                self.assertEqual(await ws.recv(), b"ok")
        run(go())


class TestHeartbeat(HeraldTestCase):
    server_args = ("--websocket.ping-interval", "1s", "--websocket.idle-timeout", "3s")

    def test_silent_client_gets_pings_then_1001(self):
        w = RawWS.connect(self.server.addr)
        self.addCleanup(w.close_socket)
        t0 = time.monotonic()
        pings = []
        while True:
            try:
                f = w.recv_frame(timeout=8)
            except (WSClosed, socket.timeout, TimeoutError) as e:
                self.fail(f"no close frame from the idle timeout ({e}); pings seen: {len(pings)}")
            if f.opcode == OP_PING:
                pings.append((time.monotonic() - t0, f.payload))
                continue  # never answered
            break
        elapsed = time.monotonic() - t0
        self.assertEqual(f.opcode, OP_CLOSE, f)
        self.assertEqual(f.close_code(), 1001, f"idle close code {f.close_code()} reason {f.close_reason()!r}")
        self.assertGreaterEqual(len(pings), 1, "no ping before the idle close")
        self.assertLess(pings[0][0], 2.0 * SLOW, f"first ping after {pings[0][0]:.2f}s (interval 1s)")
        self.assertGreater(elapsed, 2.3, f"idle close after {elapsed:.2f}s, before the 3s idle timeout")
        self.assertLess(elapsed, 5.0 * SLOW, f"idle close after {elapsed:.2f}s (idle timeout 3s)")
        # the client never answers the close: the server drops TCP at the
        # latest after websocket.close_timeout (default 5 s)
        t1 = time.monotonic()
        self.assertTrue(w.wait_eof(7), "TCP not closed within 7s after the idle close (close_timeout 5s)")
        self.assertLess(time.monotonic() - t1, 6.0 * SLOW)

    def test_raw_client_answering_pings_stays(self):
        w = RawWS.connect(self.server.addr)
        self.addCleanup(w.close_socket)
        t0 = time.monotonic()
        pings = 0
        while time.monotonic() - t0 < 5.0:
            try:
                f = w.recv_frame(timeout=0.5)
            except (socket.timeout, TimeoutError):
                continue
            self.assertNotEqual(f.opcode, OP_CLOSE,
                                f"closed with {f.close_code()} after {time.monotonic() - t0:.2f}s although "
                                "every ping was answered")
            if f.opcode == OP_PING:
                pings += 1
                w.send_frame(OP_PONG, f.payload)
        self.assertGreaterEqual(pings, 3, f"only {pings} pings in 5s with a 1s interval")
        w.send_frame(OP_TEXT, b"still here")
        self.assertEqual(w.recv_message(), (OP_TEXT, b"still here"))

    def test_websockets_client_stays_connected(self):
        async def go():
            async with websockets.connect(self.server.ws_url(), ping_interval=None, compression=None) as ws:
                await asyncio.sleep(5)
                self.assertTrue(ws.open, f"closed: {ws.close_code} {ws.close_reason}")
                await ws.send("after 5s")
                self.assertEqual(await ws.recv(), "after 5s")
        run(go())


class TestGracefulShutdown(unittest.TestCase):

    def test_sigterm_closes_websockets_1001(self):
        drain = 2.0
        srv = Herald("--drain-timeout", "2s", workers=2)
        srv.start()
        try:
            async def go():
                clients = [await websockets.connect(srv.ws_url(), ping_interval=None, close_timeout=5,
                                                    compression=c)
                           for c in (None, "deflate", None)]
                for i, ws in enumerate(clients):
                    await ws.send(f"hello {i}")
                    self.assertEqual(await ws.recv(), f"hello {i}")
                # a raw client that never answers the close keeps the drain going
                loop = asyncio.get_running_loop()
                stubborn = RawWS.connect(srv.addr)
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                results = []
                for ws in clients:
                    try:
                        msg = await asyncio.wait_for(ws.recv(), 5 * SLOW)
                        self.fail(f"message instead of close: {msg!r}")
                    except ConnectionClosed as e:
                        results.append((e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None))
                for code, reason in results:
                    self.assertEqual(code, 1001, f"close on SIGTERM: {results!r}")
                    self.assertIn("reconnect", (reason or "").lower(), f"close reason {reason!r}")
                f = await loop.run_in_executor(None, stubborn.recv_frame, 3)
                self.assertEqual((f.opcode, f.close_code()), (OP_CLOSE, 1001))
                # new connections are refused while the server drains
                if srv.alive():
                    refused = False
                    try:
                        s = socket.create_connection(srv.addr, timeout=1)
                        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                        s.settimeout(2)
                        refused = s.recv(100) == b""
                        s.close()
                    except (ConnectionRefusedError, ConnectionResetError):
                        refused = True
                    self.assertTrue(refused, "a new connection was served after SIGTERM")
                rc = await loop.run_in_executor(None, srv.wait, drain + 3 * SLOW)
                elapsed = time.monotonic() - t0
                stubborn.close_socket()
                self.assertEqual(rc, 0, f"exit code {rc} after SIGTERM")
                self.assertLess(elapsed, drain + 1.5 * SLOW, f"exit {elapsed:.2f}s after SIGTERM, drain-timeout 2s")
            run(go(), timeout=30)
        except BaseException:
            dump_output(srv, "server output (graceful shutdown)")
            raise
        finally:
            srv.stop()

    def test_sigterm_without_connections_exits_fast(self):
        srv = Herald(workers=2)
        srv.start()
        try:
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            rc = srv.wait(5 * SLOW)
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, 2.0 * SLOW)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
