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
taken by the raw, deflate and JSON clients, and by the recovering client
once its reply is out; MessagePack takes the one-by-one path; this test
checks that both give what a client is owed, side by side (a subscriber
part-way through a run: tests/unit/test_hub.c).
"""

import json
import os
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import OP_TEXT, OP_BINARY, RawWS, main  # noqa: E402
from herald_native import API_KEY, ApiTestCase  # noqa: E402

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
