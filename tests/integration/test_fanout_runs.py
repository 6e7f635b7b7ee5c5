#!/usr/bin/env python3
"""A channel's run of publications (several fanned out in one loop turn: one
POST /api/batch) reaches every kind of subscriber exactly as publication by
publication would: the same frames, byte for byte, every offset once, in
order.

One worker, one channel, batches of 40 publications whose sizes alternate
below and above websocket.deflate_min_size. Subscribers, read with raw
sockets (herald_testlib.RawWS) so the frames themselves are checked:

- two /ws/raw clients: each frame a single unmasked FIN text frame holding
  exactly the publication's data, the two byte streams identical and each
  length in its shortest form;
- a /ws/raw client with permessage-deflate (the server's default: no context
  takeover): small frames plain, large ones compressed, each one message;
- native /ws in JSON and in MessagePack: one push per publication, offsets
  1..N in order with their data;
- a native client that subscribes after some batches with recovery
  (epoch + an offset part-way through a batch): the gap in its reply, then
  every later publication, nothing twice.

The fast path (hub.h hr_run: one queue entry per subscriber per run) is
taken by the raw, deflate, JSON and MessagePack clients, and by the
recovering client once its reply is out (a subscriber part-way through a
run: tests/unit/test_hub.c).

Server-Sent Events (TestSSERuns), same batches: two streams of the channel
get exactly the events one by one would be ("id: E:N" then "data: D", byte
for byte), a stream with ?envelope=1 its enveloped form, a stream of two
channels (its ids are its own, so it takes the one-by-one path) its events
with both positions, and a stream resuming with Last-Event-ID part-way
through a batch its recovered events then every later one, nothing twice.
herald_run_deliveries_total shows which subscribers took the run as one
entry. A stream that stops reading (TestSSEQueue): its blocked queue grows
by exactly what the events one by one would cost (herald_queued_bytes:
bytes plus two entries each), and sse.max_queued_bytes ends it at the
event the one-by-one rule predicts.
"""

import json
import os
import struct
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import OP_TEXT, OP_BINARY, SLOW, HttpConn, RawWS, build_request, main  # noqa: E402
from herald_native import API_KEY, ApiTestCase, small_rcvbuf_socket  # noqa: E402

import msgpack  # noqa: E402  (Debian python3-msgpack)

CHANNEL = "runs"
BATCHES, PER_BATCH = 8, 40


def data_of(i):
    """Publication i's data: small (< 64 B) when even, large when odd."""
    return {"i": i} if i % 2 == 0 else {"i": i, "pad": "x" * 120}


class TestRuns(ApiTestCase):
    server_args = ("--api-key", API_KEY, "--channels.history-size", "1000")
    server_workers = 1

    def native(self, protocols=None):
        ws = RawWS.connect(self.server.addr, path="/ws", protocols=protocols)
        self.send_cmd(ws, {"id": 1, "connect": {}}, protocols)
        self.assertIn("result", self.reply(ws, protocols)[0])
        return ws

    @staticmethod
    def send_cmd(ws, cmd, protocols):
        if protocols:
            ws.send_binary(msgpack.packb(cmd))
        else:
            ws.send_text(json.dumps(cmd))

    @staticmethod
    def reply(ws, protocols):
        op, payload = ws.recv_message()
        if protocols:
            assert op == OP_BINARY
            return _unpack(payload)
        assert op == OP_TEXT
        return [json.loads(line) for line in payload.decode().split("\n") if line]

    def read_bytes(self, ws, n):
        ws._need(n, time.monotonic() + ws.timeout)
        out = bytes(ws.buf[:n])
        del ws.buf[:n]
        return out

    def test_run_frames_are_the_frames_one_by_one_would_be(self):
        raw = [RawWS.connect(self.server.addr, path=f"/ws/raw?channel={CHANNEL}") for _ in range(2)]
        deflated = RawWS.connect(self.server.addr, path=f"/ws/raw?channel={CHANNEL}",
                                 extensions="permessage-deflate")
        self.assertTrue(deflated.deflate)
        json_ws, mp_ws = self.native(), self.native(["herald.msgpack"])
        for ws, protos in ((json_ws, None), (mp_ws, ["herald.msgpack"])):
            self.send_cmd(ws, {"id": 2, "subscribe": {"channel": CHANNEL}}, protos)
            self.assertIn("result", self.reply(ws, protos)[0])
        late = None
        epoch = None
        sent = 0
        for b in range(BATCHES):
            datas = [data_of(sent + k + 1) for k in range(PER_BATCH)]
            results = self.api.batch_publish(CHANNEL, datas)
            self.assertEqual([r["offset"] for r in results], list(range(sent + 1, sent + PER_BATCH + 1)))
            epoch = results[0]["epoch"]
            # raw: the same frames to both, each exactly its data
            want = b""
            for d in datas:
                f = raw[0].recv_frame()
                self.assertEqual((f.fin, f.rsv1, f.opcode, f.masked), (True, False, OP_TEXT, False))
                self.assertEqual(json.loads(f.payload), d)
                want += _frame(f.payload)
            self.assertEqual(self.read_bytes(raw[1], len(want)), want)
            # deflate: one message per publication, compressed when large
            for d in datas:
                op, payload = deflated.recv_message()
                self.assertEqual(op, OP_TEXT)
                self.assertEqual(json.loads(payload), d)
            # native: one push per publication, offsets in order
            for ws, protos in ((json_ws, None), (mp_ws, ["herald.msgpack"])):
                for k, d in enumerate(datas):
                    (push,) = self.reply(ws, protos)
                    self.assertEqual(push["pub"]["offset"], sent + k + 1)
                    self.assertEqual(push["pub"]["data"], d)
            if late is not None:
                for k, d in enumerate(datas):
                    (push,) = self.reply(late, None)
                    self.assertEqual(push["pub"]["offset"], sent + k + 1)
            sent += PER_BATCH
            if b == 3:  # recover from part-way through batch 2
                late = self.native()
                since = 2 * PER_BATCH + 7
                self.send_cmd(late, {"id": 2, "subscribe": {"channel": CHANNEL, "recover": True,
                                                            "epoch": epoch, "offset": since}}, None)
                (res,) = self.reply(late, None)
                self.assertTrue(res["result"]["recovered"], res)
                self.assertEqual([p["offset"] for p in res["result"]["publications"]],
                                 list(range(since + 1, sent + 1)))
        for ws in raw + [deflated, json_ws, mp_ws, late]:
            self.assertEqual(bytes(ws.buf), b"")  # nothing more, nothing twice
            ws.close_socket()


def compact(v):
    return json.dumps(v, separators=(",", ":"))


def metric(server, name):
    """One unlabelled sample of the server's /metrics."""
    with urllib.request.urlopen(server.url("/metrics"), timeout=5 * SLOW) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in /metrics")


def sse_event(ids, data, channel=None):
    """The bytes of one publication's event: its id line, its data line
    (enveloped when channel is given), the blank line."""
    d = compact(data)
    if channel is not None:
        d = '{"channel":%s,"offset":%d,"data":%s}' % (json.dumps(channel), ids[0][1], d)
    pos = ".".join(f"{e}:{o}" for e, o in ids)
    return f"id: {pos}\ndata: {d}\n\n".encode()


class RawSSE:
    """One /sse stream on a raw socket, read as bytes and as events."""

    def __init__(self, addr, path, headers=None, sock=None):
        self.conn = HttpConn(addr, timeout=10, sock=sock)
        hdrs = [("Accept", "text/event-stream")] + list((headers or {}).items())
        self.conn.send(build_request("GET", path, hdrs))

    def start(self):
        head = self.conn.read_head(self.deadline())
        assert head.startswith(b"HTTP/1.1 200 "), head
        self.event()  # ":ok" and "retry:"
        return self.event()  # the connected event

    def deadline(self):
        return time.monotonic() + self.conn.timeout

    def read(self, n):
        return self.conn.read_exact(n, self.deadline())

    def event(self):
        """The next event's raw bytes, blank line included."""
        dl = self.deadline()
        while b"\n\n" not in self.conn.buf:
            self.conn._fill(dl)
        i = self.conn.buf.index(b"\n\n") + 2
        return self.read(i)

    @staticmethod
    def field(ev, name):
        for line in ev.decode().split("\n"):
            if line.startswith(name + ": "):
                return line[len(name) + 2:]
        return None


class TestSSERuns(ApiTestCase):
    server_args = ("--api-key", API_KEY, "--channels.history-size", "1000")
    server_workers = 1

    def stream(self, path, headers=None):
        s = RawSSE(self.server.addr, path, headers)
        connected = s.start()
        return s, connected

    def test_sse_run_events_are_the_events_one_by_one_would_be(self):
        ch, other = "sseruns", "sseruns-other"
        plain = [self.stream(f"/sse?channel={ch}")[0] for _ in range(2)]
        env, _ = self.stream(f"/sse?channel={ch}&envelope=1")
        two, connected = self.stream(f"/sse?channel={ch}&channel={other}")
        other_pos = RawSSE.field(connected, "id").split(".")[1]  # stays: nothing is published there
        mp = RawWS.connect(self.server.addr, path="/ws", protocols=["herald.msgpack"])
        for cmd in ({"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": ch}}):
            TestRuns.send_cmd(mp, cmd, True)
            self.assertIn("result", TestRuns.reply(mp, True)[0])
        late = None
        sent = 0
        for b in range(BATCHES):
            datas = [data_of(sent + k + 1) for k in range(PER_BATCH)]
            runs0 = metric(self.server, "herald_run_deliveries_total")
            results = self.api.batch_publish(ch, datas)
            epoch = results[0]["epoch"]
            offs = [r["offset"] for r in results]
            self.assertEqual(offs, list(range(sent + 1, sent + PER_BATCH + 1)))
            want = b"".join(sse_event([(epoch, o)], d) for o, d in zip(offs, datas))
            for s in plain + ([late] if late else []):
                self.assertEqual(s.read(len(want)), want)
            want_env = b"".join(sse_event([(epoch, o)], d, ch) for o, d in zip(offs, datas))
            self.assertEqual(env.read(len(want_env)), want_env)
            want_two = b"".join(f"id: {epoch}:{o}.{other_pos}\ndata: {compact(d)}\n\n".encode()
                                for o, d in zip(offs, datas))
            self.assertEqual(two.read(len(want_two)), want_two)
            for o, d in zip(offs, datas):
                (push,) = TestRuns.reply(mp, True)
                self.assertEqual((push["pub"]["offset"], push["pub"]["data"]), (o, d))
            # one entry each for the two plain streams, the envelope, MessagePack and the resumed
            # stream (once started); the stream of two channels took them one by one
            takers = 4 + (late is not None)
            self.assertEqual(metric(self.server, "herald_run_deliveries_total") - runs0, takers * PER_BATCH)
            sent += PER_BATCH
            if b == 3:  # a stream resuming from part-way through batch 2: its gap, then live
                since = 2 * PER_BATCH + 7
                late, _ = self.stream(f"/sse?channel={ch}", {"Last-Event-ID": f"{epoch}:{since}"})
                gap = b"".join(sse_event([(epoch, o)], data_of(o)) for o in range(since + 1, sent + 1))
                self.assertEqual(late.read(len(gap)), gap)
        for s in plain + [env, two, late]:
            s.conn.sock.settimeout(0.2)
            with self.assertRaises(OSError):  # nothing more, nothing twice
                s.conn._fill(time.monotonic() + 0.2)
            self.assertEqual(bytes(s.conn.buf), b"")
            s.conn.close()
        mp.close_socket()


MAX_QUEUED = 256 * 1024
BIG = "b" * 1000


class TestSSEQueue(ApiTestCase):
    """A stream that never reads, one worker, sse.max_queued_bytes 256 KiB."""
    server_args = ("--api-key", API_KEY, "--sse.max-queued-bytes", str(MAX_QUEUED),
                   "--websocket.close-timeout", "60s", "--channels.history-size", "4000")
    server_workers = 1

    def settled_queue(self):
        """herald_queued_bytes once it holds still (the kernel takes no more)."""
        last = None
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            q = metric(self.server, "herald_queued_bytes")
            if q == last:
                return q
            last = q
            time.sleep(0.3)
        raise AssertionError("herald_queued_bytes does not settle")

    def test_blocked_stream_queue_counts_and_ends_as_one_by_one(self):
        ch = "ssequeue"
        s = RawSSE(self.server.addr, f"/sse?channel={ch}", sock=small_rcvbuf_socket(self.server.addr, 4096))
        s.start()
        sent, epoch = 0, None

        def batch():
            nonlocal sent, epoch
            results = self.api.batch_publish(ch, [{"n": sent + k + 1, "pad": BIG} for k in range(PER_BATCH)])
            epoch = results[0]["epoch"]
            sent += PER_BATCH

        def cost(o):  # what event o costs in the queue one by one: its bytes and two entries
            return len(sse_event([(epoch, o)], {"n": o, "pad": BIG})) + 2 * 64

        q = 0
        while q == 0:  # fill the kernel's buffers: from now on every event stays queued in Herald
            batch()
            q = self.settled_queue()
            self.assertLess(sent, 4000, "the stream's socket never filled")
        self.assertLess(q, MAX_QUEUED)
        # the one-by-one rule, event by event: queued while the queue is within the limit before it,
        # the stream ends at the first event that finds it over
        ended = False
        for _ in range(MAX_QUEUED // (PER_BATCH * 1000) + 2):
            first, q0 = sent + 1, q
            runs0 = metric(self.server, "herald_run_deliveries_total")
            batch()
            for o in range(first, sent + 1):
                if q > MAX_QUEUED:
                    ended = True
                    break
                q += cost(o)
            slow = metric(self.server, "herald_slow_consumer_disconnects_total")
            if ended:
                self.assertEqual(slow, 1)
                break
            self.assertEqual(slow, 0)
            self.assertEqual(self.settled_queue(), q)
            # a batch that fits went as one entry; the one that takes the queue past the limit one by one
            whole = q <= MAX_QUEUED
            self.assertEqual(metric(self.server, "herald_run_deliveries_total") - runs0, PER_BATCH if whole else 0,
                             (q0, q))
        self.assertTrue(ended)
        s.conn.close()


def _frame(payload):
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    return bytes([0x81, 126]) + struct.pack("!H", n) + payload


def _unpack(payload):
    u = msgpack.Unpacker(raw=False)
    u.feed(payload)
    return list(u)


if __name__ == "__main__":
    main()
