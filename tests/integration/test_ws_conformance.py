#!/usr/bin/env python3
"""RFC 6455 / RFC 7692 conformance of /ws/echo, with raw frames.

Modelled on the Autobahn TestSuite sections 1-7 (framing, pings/pongs,
reserved bits, opcodes, fragmentation, UTF-8 incl. fail-fast, close
handling), plus limits (1009), the opening handshake and its errors, and
permessage-deflate built by hand with zlib (compressed / fragmented / corrupt
messages, RSV1 misuse, zip bomb).

A real client library refuses to send most of these frames, hence the raw
client in herald_testlib.
"""

import base64
import os
import signal
import socket
import struct
import sys
import time
import unittest
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, SLOW,  # noqa: E402
                            Herald, HeraldTestCase, HttpConn, RawWS, WSClosed, build_frame, close_payload, deflate_bytes,
                            dump_output, inflate_bytes, main, ws_accept)

KiB = 1024
MiB = 1024 * 1024

# Compressed messages: a fragmented compressed message is inflated fragment by
# fragment, so size (1009) and UTF-8 (1007) fail as early as for uncompressed
# text; the *_fails_fast tests below send no FIN at all.

VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]

INVALID_UTF8 = [
    b"\xc0\x80",                 # overlong NUL
    b"\xc1\xbf",                 # overlong
    b"\xe0\x80\x80",             # overlong 3-byte
    b"\xf0\x80\x80\x80",         # overlong 4-byte
    b"\xed\xa0\x80",             # surrogate U+D800
    b"\xed\xbf\xbf",             # surrogate U+DFFF
    b"\xf4\x90\x80\x80",         # > U+10FFFF
    b"\xf5\x80\x80\x80",         # F5 never valid
    b"\xf8\x88\x80\x80\x80",     # 5-byte form
    b"\xfe",
    b"\xff",
    b"\x80",                     # lone continuation
    b"Hello\xbf",
    b"Hello\xe2\x82",            # truncated at the end of the message
    b"\xe2\x82(",                # truncated in the middle
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",  # Autobahn 6.3.1
]

VALID_UTF8 = [
    "",
    "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!",
    "\u03ba\u1f79\u03c3\u03bc\u03b5",
    "\U0001d11e musical symbol",
    "\x00 nul is valid",
    "\u007f\u0080\u07ff\u0800\uffff",
    "\ud7ff\ue000\ufffd",
    "\U00010000\U0010ffff",
]


class WSCase(HeraldTestCase):
    """Helpers shared by the WebSocket test classes."""

    offer = None  # Sec-WebSocket-Extensions offer for self.ws()

    def ws(self, **kw):
        if self.offer is not None:
            kw.setdefault("extensions", self.offer)
        w = RawWS.connect(self.server.addr, "/ws/echo", **kw)
        self.addCleanup(w.close_socket)
        return w

    def assertEcho(self, w, opcode, payload, **send_kw):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        w.send_frame(opcode, payload, **send_kw)
        op, data = w.recv_message(timeout=10)
        self.assertEqual(op, opcode, "echo changed the opcode")
        self.assertEqual(len(data), len(payload))
        self.assertEqual(data, payload)

    def assertFails(self, raw, code, before=None, timeout=3.0):
        """Send raw bytes on a fresh connection and expect close `code`. `before`:
        list of (opcode, payload) messages that must be echoed before the close."""
        w = self.ws()
        try:
            w.send_raw(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        for opcode, payload in before or []:
            op, data = w.recv_message(timeout=timeout)
            self.assertEqual((op, data), (opcode, payload))
        return w.expect_close(code, timeout=timeout)

    def assertStillServing(self):
        w = self.ws()
        self.assertEcho(w, OP_TEXT, "still alive")
        w.send_close(1000)
        w.expect_close(1000)


def frame(opcode, payload=b"", **kw):
    return build_frame(opcode, payload, **kw)


# --------------------------------------------------------------------------
# 1. Framing
# --------------------------------------------------------------------------


class TestFraming(WSCase):
    SIZES = [0, 1, 125, 126, 127, 128, 1000, 65535, 65536, 65537, 256 * KiB]

    def test_text_sizes(self):
        w = self.ws()
        for n in self.SIZES:
            with self.subTest(n=n):
                self.assertEcho(w, OP_TEXT, ("*" * n).encode())

    def test_binary_sizes(self):
        w = self.ws()
        for n in self.SIZES:
            with self.subTest(n=n):
                self.assertEcho(w, OP_BINARY, os.urandom(n))

    def test_binary_1mib(self):
        w = self.ws()
        self.assertEcho(w, OP_BINARY, os.urandom(MiB))

    def test_frame_sent_in_chunks(self):
        w = self.ws()
        w.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = os.urandom(65536)
        raw = frame(OP_BINARY, payload)
        for i in range(0, len(raw), 997):
            w.send_raw(raw[i:i + 997])
            if i % (997 * 16) == 0:
                time.sleep(0.005)
        op, data = w.recv_message()
        self.assertEqual((op, data), (OP_BINARY, payload))

    def test_frame_byte_by_byte(self):
        w = self.ws()
        w.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"byte by byte " * 12  # 156 bytes: 16-bit length form
        for b in frame(OP_TEXT, payload):
            w.send_raw(bytes([b]))
        op, data = w.recv_message()
        self.assertEqual((op, data), (OP_TEXT, payload))

    def test_many_frames_in_one_write(self):
        w = self.ws()
        msgs = [(OP_TEXT if i % 2 else OP_BINARY, f"message {i}".encode() * (i + 1)) for i in range(20)]
        w.send_raw(b"".join(frame(op, p) for op, p in msgs))
        for op, p in msgs:
            self.assertEqual(w.recv_message(), (op, p))

    def test_zero_mask_key(self):
        w = self.ws()
        self.assertEcho(w, OP_TEXT, "zero mask", mask_key=b"\x00\x00\x00\x00")

    def test_handshake_and_frame_in_one_write(self):
        req, key = RawWS.handshake_request("/ws/echo")
        s = socket.create_connection(self.server.addr, timeout=5 * SLOW)
        self.addCleanup(s.close)
        s.sendall(req + frame(OP_TEXT, b"early frame"))
        c = HttpConn(None, sock=s)
        resp = c.read_response()
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("Sec-WebSocket-Accept"), ws_accept(key))
        w = RawWS(s, resp, bytes(c.buf))
        self.assertEqual(w.recv_message(), (OP_TEXT, b"early frame"))

    def test_unmasked_frame_1002(self):
        self.assertFails(frame(OP_TEXT, b"unmasked", mask=False), 1002)

    def test_unmasked_after_valid_1002(self):
        raw = frame(OP_TEXT, b"ok") + frame(OP_BINARY, b"unmasked", mask=False)
        self.assertFails(raw, 1002, before=[(OP_TEXT, b"ok")])

    def test_unmasked_empty_close_1002(self):
        self.assertFails(frame(OP_CLOSE, b"", mask=False), 1002)

    def test_64bit_length_with_msb_set(self):
        # RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0.
        raw = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 63) + b"\x00\x00\x00\x00"
        self.assertFails(raw, (1002, 1009))

    def test_frame_over_default_limit_1009(self):
        # default websocket.max_frame_size / echo_max_message_size is 16 MiB: a
        # header announcing 16 MiB + 1 is refused from the header alone.
        raw = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 16 * MiB + 1) + b"\x01\x02\x03\x04" + b"x" * 100
        self.assertFails(raw, 1009)


# --------------------------------------------------------------------------
# 2. Pings and pongs
# --------------------------------------------------------------------------


class TestPingPong(WSCase):

    def test_ping_empty(self):
        w = self.ws()
        self.assertEqual(w.ping(b""), b"")

    def test_ping_text_payload(self):
        w = self.ws()
        self.assertEqual(w.ping(b"Hello, world!"), b"Hello, world!")

    def test_ping_binary_125(self):
        w = self.ws()
        p = bytes(range(125))
        self.assertEqual(w.ping(p), p)

    def test_ping_126_1002(self):
        self.assertFails(frame(OP_PING, b"x" * 126), 1002)

    def test_pong_126_1002(self):
        self.assertFails(frame(OP_PONG, b"x" * 126), 1002)

    def test_ping_byte_by_byte(self):
        w = self.ws()
        w.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p = b"slow ping payload"
        for b in frame(OP_PING, p):
            w.send_raw(bytes([b]))
            time.sleep(0.002)
        f = w.recv_frame()
        self.assertEqual((f.opcode, f.payload, f.fin), (OP_PONG, p, True))

    def test_unsolicited_pong_ignored(self):
        w = self.ws()
        w.send_frame(OP_PONG, b"unsolicited")
        w.send_frame(OP_PONG, b"")
        self.assertEcho(w, OP_TEXT, "after pongs")
        self.assertEqual(w.ping(b"p"), b"p")

    def test_unsolicited_pong_then_ping(self):
        w = self.ws()
        w.send_raw(frame(OP_PONG, b"unsolicited") + frame(OP_PING, b"solicited"))
        f = w.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"solicited"))

    def test_ten_pings_sequential(self):
        w = self.ws()
        for i in range(10):
            p = f"ping #{i}".encode()
            self.assertEqual(w.ping(p), p)

    def test_ten_pings_burst(self):
        # RFC 6455 5.5.3: a pong may answer only the most recent ping; it must
        # carry that ping's payload.
        w = self.ws()
        payloads = [f"burst {i}".encode() for i in range(10)]
        w.send_raw(b"".join(frame(OP_PING, p) for p in payloads))
        w.send_frame(OP_TEXT, b"marker")
        got = []
        while True:
            f = w.recv_frame()
            if f.opcode == OP_PONG:
                got.append(f.payload)
                continue
            self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"marker"))
            break
        self.assertTrue(got, "no pong for 10 pings")
        self.assertEqual(got[-1], payloads[-1])
        it = iter(payloads)
        self.assertTrue(all(g in it for g in got), f"pongs out of order or unknown: {got!r}")

    def test_ping_between_messages_keeps_order(self):
        w = self.ws()
        w.send_raw(frame(OP_TEXT, b"one") + frame(OP_PING, b"mid") + frame(OP_TEXT, b"two"))
        frames = [w.recv_frame() for _ in range(3)]
        self.assertEqual([(f.opcode, f.payload) for f in frames],
                         [(OP_TEXT, b"one"), (OP_PONG, b"mid"), (OP_TEXT, b"two")])


# --------------------------------------------------------------------------
# 3. Reserved bits   4. Opcodes
# --------------------------------------------------------------------------


class TestReservedBitsAndOpcodes(WSCase):

    def test_rsv_bits_without_extension_1002(self):
        cases = [
            (OP_TEXT, dict(rsv1=True)), (OP_TEXT, dict(rsv2=True)), (OP_TEXT, dict(rsv3=True)),
            (OP_BINARY, dict(rsv1=True)), (OP_BINARY, dict(rsv2=True, rsv3=True)),
            (OP_PING, dict(rsv3=True)), (OP_PONG, dict(rsv2=True)), (OP_CLOSE, dict(rsv1=True)),
        ]
        for op, bits in cases:
            with self.subTest(op=op, bits=bits):
                payload = close_payload(1000) if op == OP_CLOSE else b"rsv"
                self.assertFails(frame(op, payload, **bits), 1002)

    def test_rsv_after_valid_then_ping_not_answered(self):
        # Autobahn 3.2/3.3: the echo of the first message comes back, then a
        # 1002 close; the ping sent after the bad frame is not answered.
        w = self.ws()
        w.send_raw(frame(OP_TEXT, b"Hello") + frame(OP_TEXT, b"Hello", rsv2=True) + frame(OP_PING, b"x"))
        self.assertEqual(w.recv_message(answer_pings=False), (OP_TEXT, b"Hello"))
        f = w.recv_frame()
        self.assertEqual(f.opcode, OP_CLOSE, f"expected close 1002 right after the echo, got {f!r}")
        self.assertEqual(f.close_code(), 1002)

    def test_reserved_data_opcodes_1002(self):
        for op in (3, 4, 5, 6, 7):
            with self.subTest(opcode=op):
                self.assertFails(frame(op, b"reserved"), 1002)

    def test_reserved_control_opcodes_1002(self):
        for op in (0xB, 0xC, 0xD, 0xE, 0xF):
            with self.subTest(opcode=op):
                self.assertFails(frame(op, b"reserved"), 1002)

    def test_reserved_opcode_after_valid_1002(self):
        raw = frame(OP_TEXT, b"first") + frame(5, b"") + frame(OP_PING, b"p")
        self.assertFails(raw, 1002, before=[(OP_TEXT, b"first")])

    def test_server_still_healthy(self):
        self.assertStillServing()


# --------------------------------------------------------------------------
# 5. Fragmentation
# --------------------------------------------------------------------------


class TestFragmentation(WSCase):

    def test_text_two_fragments(self):
        w = self.ws()
        w.send_raw(frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_CONT, b"fragment2"))
        self.assertEqual(w.recv_message(), (OP_TEXT, b"fragment1fragment2"))

    def test_binary_three_fragments_separate_writes(self):
        w = self.ws()
        parts = [os.urandom(1000), os.urandom(70000), os.urandom(10)]
        w.send_frame(OP_BINARY, parts[0], fin=False)
        time.sleep(0.05)
        w.send_frame(OP_CONT, parts[1], fin=False)
        time.sleep(0.05)
        w.send_frame(OP_CONT, parts[2], fin=True)
        self.assertEqual(w.recv_message(), (OP_BINARY, b"".join(parts)))

    def test_empty_fragments(self):
        w = self.ws()
        w.send_raw(frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, b"", fin=False) + frame(OP_CONT, b""))
        self.assertEqual(w.recv_message(), (OP_TEXT, b""))

    def test_many_small_fragments(self):
        w = self.ws()
        chunks = [f"{i:04d}|".encode() for i in range(500)]
        raw = frame(OP_BINARY, chunks[0], fin=False)
        raw += b"".join(frame(OP_CONT, c, fin=False) for c in chunks[1:-1])
        raw += frame(OP_CONT, chunks[-1])
        w.send_raw(raw)
        self.assertEqual(w.recv_message(), (OP_BINARY, b"".join(chunks)))

    def _fragmented_with_ping(self, separate):
        w = self.ws()
        frames = [frame(OP_TEXT, b"frag-a ", fin=False), frame(OP_PING, b"ping in between"),
                  frame(OP_CONT, b"frag-b ", fin=False), frame(OP_PING, b"second ping"),
                  frame(OP_CONT, b"frag-c")]
        if separate:
            for f in frames:
                w.send_raw(f)
                time.sleep(0.05)
        else:
            w.send_raw(b"".join(frames))
        pongs, msg = [], None
        deadline = time.monotonic() + 5 * SLOW
        # Pings that arrive together may be answered by one pong for the latest (RFC 6455 §5.5.3).
        while msg is None or pongs[-1:] != [b"second ping"]:
            self.assertLess(time.monotonic(), deadline, f"timeout: pongs={pongs!r} msg={msg!r}")
            f = w.recv_frame()
            if f.opcode == OP_PONG:
                pongs.append(f.payload)
            else:
                self.assertIsNone(msg, f"second message {f!r}")
                self.assertIn(f.opcode, (OP_TEXT, OP_CONT))
                parts = [f]
                while not parts[-1].fin:
                    g = w.recv_frame()
                    if g.opcode == OP_PONG:
                        pongs.append(g.payload)
                        continue
                    parts.append(g)
                self.assertEqual(parts[0].opcode, OP_TEXT)
                msg = b"".join(p.payload for p in parts)
        if separate:
            self.assertEqual(pongs, [b"ping in between", b"second ping"])
        else:
            self.assertIn(pongs, ([b"ping in between", b"second ping"], [b"second ping"]))
        self.assertEqual(msg, b"frag-a frag-b frag-c")

    def test_ping_inside_fragmented_message(self):
        self._fragmented_with_ping(separate=False)

    def test_ping_inside_fragmented_message_separate_writes(self):
        self._fragmented_with_ping(separate=True)

    def test_fragmented_ping_1002(self):
        self.assertFails(frame(OP_PING, b"frag", fin=False) + frame(OP_CONT, b"ment"), 1002)

    def test_fragmented_pong_1002(self):
        self.assertFails(frame(OP_PONG, b"frag", fin=False) + frame(OP_CONT, b"ment"), 1002)

    def test_fragmented_close_1002(self):
        self.assertFails(frame(OP_CLOSE, close_payload(1000), fin=False) + frame(OP_CONT, b""), 1002)

    def test_continuation_without_start_fin_1002(self):
        self.assertFails(frame(OP_CONT, b"orphan"), 1002)

    def test_continuation_without_start_nofin_1002(self):
        self.assertFails(frame(OP_CONT, b"orphan", fin=False), 1002)

    def test_continuation_after_complete_message_1002(self):
        raw = frame(OP_TEXT, b"complete") + frame(OP_CONT, b"orphan")
        self.assertFails(raw, 1002, before=[(OP_TEXT, b"complete")])

    def test_text_while_fragmented_open_1002(self):
        self.assertFails(frame(OP_TEXT, b"start", fin=False) + frame(OP_TEXT, b"again"), 1002)

    def test_binary_while_fragmented_open_1002(self):
        self.assertFails(frame(OP_BINARY, b"start", fin=False) + frame(OP_BINARY, b"again", fin=False), 1002)

    def test_close_inside_fragmented_message(self):
        w = self.ws()
        w.send_raw(frame(OP_TEXT, b"unfinished", fin=False) + frame(OP_CLOSE, close_payload(1000)))
        w.expect_close(1000)


# --------------------------------------------------------------------------
# 6. UTF-8
# --------------------------------------------------------------------------


class TestUtf8(WSCase):

    def test_valid_utf8_echo(self):
        w = self.ws()
        for s in VALID_UTF8:
            with self.subTest(s=s):
                self.assertEcho(w, OP_TEXT, s.encode("utf-8"))

    def test_valid_utf8_split_at_every_byte(self):
        w = self.ws()
        data = "\u03ba\u1f79\u03c3\u03bc\u03b5 \U0001d11e \u20ac".encode("utf-8")
        raw = frame(OP_TEXT, data[:1], fin=False)
        raw += b"".join(frame(OP_CONT, data[i:i + 1], fin=False) for i in range(1, len(data) - 1))
        raw += frame(OP_CONT, data[-1:])
        w.send_raw(raw)
        self.assertEqual(w.recv_message(), (OP_TEXT, data))

    def test_codepoint_split_between_fragments_is_not_an_error(self):
        w = self.ws()
        w.send_frame(OP_TEXT, b"ab\xe2\x82", fin=False)
        time.sleep(0.2)  # the server must wait: the sequence may still complete
        w.send_frame(OP_CONT, b"\xac")
        self.assertEqual(w.recv_message(), (OP_TEXT, "ab\u20ac".encode()))

    def test_invalid_utf8_single_frame_1007(self):
        for bad in INVALID_UTF8:
            with self.subTest(bad=bad):
                self.assertFails(frame(OP_TEXT, bad), 1007)

    def test_invalid_utf8_fragmented_1007(self):
        for bad in INVALID_UTF8:
            with self.subTest(bad=bad):
                raw = frame(OP_TEXT, b"valid start ", fin=False) + frame(OP_CONT, bad, fin=False) + frame(OP_CONT, b"end")
                self.assertFails(raw, 1007)

    def test_invalid_utf8_fail_fast_without_fin(self):
        # The close must come after the bad fragment, with no FIN ever sent.
        for bad in [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", b"\xff", b"\xc0\x80",
                    b"\xf4\x90", b"\xed\xa0", b"ok\x80"]:
            with self.subTest(bad=bad):
                w = self.ws()
                w.send_frame(OP_TEXT, b"Hello ", fin=False)
                w.send_frame(OP_CONT, bad, fin=False)
                t0 = time.monotonic()
                w.expect_close(1007, timeout=3.0)
                self.assertLess(time.monotonic() - t0, 2.0 * SLOW)

    def test_invalid_utf8_in_first_fragment_fail_fast(self):
        w = self.ws()
        w.send_frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", fin=False)
        w.expect_close(1007, timeout=3.0)

    def test_truncated_sequence_at_final_fragment_1007(self):
        raw = frame(OP_TEXT, b"abc", fin=False) + frame(OP_CONT, b"\xe2\x82")
        self.assertFails(raw, 1007)

    def test_binary_is_not_validated(self):
        w = self.ws()
        self.assertEcho(w, OP_BINARY, b"\xff\xfe\xc0\x80\xed\xa0\x80")

    def test_close_reason_invalid_utf8_1007(self):
        self.assertFails(frame(OP_CLOSE, close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")),
                         1007)

    def test_server_still_healthy(self):
        self.assertStillServing()


# --------------------------------------------------------------------------
# 7. Close handling
# --------------------------------------------------------------------------


class TestClose(WSCase):

    def test_close_without_payload(self):
        w = self.ws()
        w.send_close()
        f = w.expect_close((None, 1000), reply=False)
        self.assertIn(len(f.payload), (0, 2))

    def test_close_valid_codes_echoed(self):
        for code in VALID_CLOSE_CODES:
            with self.subTest(code=code):
                w = self.ws()
                w.send_close(code)
                w.expect_close(code, reply=False)

    def test_close_with_reason(self):
        w = self.ws()
        reason = ("\u00e9" * 61).encode() + b"x"  # 123 bytes: the maximum
        self.assertEqual(len(reason), 123)
        w.send_close(1000, reason)
        f = w.expect_close(1000, reply=False)
        self.assertEqual(f.payload[2:], reason)  # code and reason echoed (RFC 6455 §5.5.1)

    def test_close_reason_echoed(self):
        """The server's close answers with the client's code and reason, as
        browsers' conformance tests expect (RFC 6455 §5.5.1)."""
        for code, reason in ((1000, b"bye"), (4001, b"app closing: \xe2\x9c\x93"), (1001, b"")):
            with self.subTest(code=code, reason=reason):
                w = self.ws()
                w.send_close(code, reason)
                f = w.expect_close(code, reply=False)
                self.assertEqual(f.payload, close_payload(code, reason))

    def test_close_invalid_codes_1002(self):
        for code in INVALID_CLOSE_CODES:
            with self.subTest(code=code):
                self.assertFails(frame(OP_CLOSE, struct.pack("!H", code) + b"bad code"), 1002)

    def test_close_one_byte_payload_1002(self):
        self.assertFails(frame(OP_CLOSE, b"\x03"), 1002)

    def test_close_payload_too_long_1002(self):
        self.assertFails(frame(OP_CLOSE, close_payload(1000, b"r" * 124)), 1002)

    def test_data_then_close_in_one_write(self):
        w = self.ws()
        w.send_raw(frame(OP_TEXT, b"last words") + frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual(w.recv_message(), (OP_TEXT, b"last words"))
        w.expect_close(1000, reply=False)

    def test_frames_after_close_ignored(self):
        w = self.ws()
        w.send_raw(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, b"after close") + frame(OP_PING, b"p"))
        f = w.recv_frame()
        self.assertEqual(f.opcode, OP_CLOSE, f"first frame after close should be the close, got {f!r}")
        self.assertEqual(f.close_code(), 1000)
        # nothing else may follow the close frame
        try:
            g = w.recv_frame(timeout=1.0)
            self.fail(f"frame after the server's close: {g!r}")
        except (WSClosed, socket.timeout, TimeoutError):
            pass
        self.assertTrue(w.wait_eof(3.0), "server did not close TCP after the close handshake")

    def test_server_closes_tcp_after_close(self):
        w = self.ws()
        w.send_close(1000, b"bye")
        w.recv_frame()
        t0 = time.monotonic()
        self.assertTrue(w.wait_eof(2.0), "TCP still open 2s after the close handshake")
        self.assertLess(time.monotonic() - t0, 2.0 * SLOW)

    def test_close_after_large_message(self):
        w = self.ws()
        big = os.urandom(300 * KiB)
        w.send_raw(frame(OP_BINARY, big) + frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual(w.recv_message(timeout=10), (OP_BINARY, big))
        w.expect_close(1000, reply=False)

    def test_abrupt_tcp_close_does_not_hurt(self):
        for _ in range(20):
            w = self.ws()
            w.send_raw(frame(OP_TEXT, b"x" * 1000, fin=False)[:500])
            w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            w.close_socket()
        self.assertStillServing()


class TestCloseReleasesConnection(unittest.TestCase):
    """Once the close handshake is complete the server must drop the
    connection at once, not when websocket.close_timeout (5 s) fires.
    Observable from outside: the server's open descriptors, and a SIGTERM
    drain that has nothing left to wait for."""

    def _check(self, provoke):
        srv = Herald(workers=1)
        srv.start()
        try:
            fd_dir = f"/proc/{srv.proc.pid}/fd"
            base = len(os.listdir(fd_dir))
            w = RawWS.connect(srv.addr)
            provoke(w)  # ends with the close handshake complete and TCP closed by the server
            # released at once; polled for up to 2 s (a loaded machine may not run the worker for a while),
            # which is still well inside the 5 s close_timeout that a server holding it would wait for
            deadline = time.monotonic() + 2.0
            left = len(os.listdir(fd_dir))
            while left != base and time.monotonic() < deadline:
                time.sleep(0.02)
                left = len(os.listdir(fd_dir))
            w.close_socket()
            self.assertEqual(left, base, "the server still holds the connection's descriptor 2 s after the "
                                         "close handshake completed")
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            rc = srv.wait(10)
            elapsed = time.monotonic() - t0
            self.assertEqual(rc, 0)
            self.assertLess(elapsed, 1.5 * SLOW, f"SIGTERM with no open connection took {elapsed:.2f}s")
        except BaseException:
            dump_output(srv, "server output (close release)")
            raise
        finally:
            srv.stop()

    def test_client_initiated_close(self):
        def provoke(w):
            w.send_close(1000)
            w.expect_close(1000, reply=False)
        self._check(provoke)

    def test_server_initiated_close_after_protocol_error(self):
        def provoke(w):
            w.send_frame(OP_TEXT, b"\xff")
            w.expect_close(1007)  # replies with a close, then waits for EOF
        self._check(provoke)


# --------------------------------------------------------------------------
# Limits (1009)
# --------------------------------------------------------------------------


class TestLimits(WSCase):
    server_args = ("--websocket.echo-max-message-size", "1MiB")

    def test_message_at_limit_ok(self):
        w = self.ws()
        self.assertEcho(w, OP_BINARY, os.urandom(MiB))
        self.assertEcho(w, OP_TEXT, b"t" * MiB)

    def test_frame_over_limit_1009_from_header(self):
        w = self.ws()
        w.send_raw(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", MiB + 1) + b"\x01\x02\x03\x04" + b"x" * 1000)
        w.expect_close(1009)

    def test_frame_over_limit_1009_full_payload(self):
        w = self.ws()
        try:
            w.send_frame(OP_BINARY, b"x" * (MiB + 1))
        except (BrokenPipeError, ConnectionResetError):
            pass
        w.expect_close(1009, timeout=5)

    def test_oversized_payload_is_skipped_not_parsed(self):
        """A frame over the limit whose payload is made of bytes that read as close frames:
        the server knows the frame's length and skips its payload, so it neither takes those
        bytes for the client's close nor closes TCP while the client is still sending (that
        would reset the connection and could destroy the server's own close frame: a client
        sees 1006 instead of 1009)."""
        w = self.ws()
        n = 2 * MiB
        fake_close = b"\x88\x80\x00\x00\x00\x00"  # masked close frame, empty, zero mask
        payload = (fake_close * (n // len(fake_close) + 1))[:n]
        w.send_raw(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", n) + b"\x00\x00\x00\x00" + payload[:64 * KiB])
        f = w.recv_frame(timeout=5)
        self.assertEqual((f.opcode, f.close_code()), (OP_CLOSE, 1009))
        time.sleep(0.3)
        w.send_raw(payload[64 * KiB:])  # raises ConnectionResetError if the server closed already
        w.send_close(1000)
        w.sock.settimeout(3 * SLOW)
        rest = b""
        while True:  # then the server closes TCP
            chunk = w.sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        self.assertEqual(rest, b"")

    def test_fragmented_message_over_limit_1009(self):
        w = self.ws()
        part = b"f" * (400 * KiB)
        try:
            w.send_frame(OP_TEXT, part, fin=False)
            w.send_frame(OP_CONT, part, fin=False)
            w.send_frame(OP_CONT, part, fin=False)  # 1.2 MiB > 1 MiB, still no FIN
        except (BrokenPipeError, ConnectionResetError):
            pass
        w.expect_close(1009, timeout=5)

    def test_env_var_limit(self):
        # covered in test_cli too; here: the server of this class still works
        self.assertStillServing()


class TestLimitsEnv(WSCase):
    server_env = {"HERALD_WEBSOCKET_ECHO_MAX_MESSAGE_SIZE": "1MiB"}

    def test_env_limit_applies(self):
        w = self.ws()
        w.send_raw(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", MiB + 1) + b"\x01\x02\x03\x04")
        w.expect_close(1009)


# --------------------------------------------------------------------------
# Opening handshake
# --------------------------------------------------------------------------


class TestHandshake(WSCase):
    server_args = ("--websocket.allowed-origins", "https://good.example",
                   "--websocket.subprotocols", "chat,superchat")

    def raw_handshake(self, **kw):
        headers = kw.pop("headers", None)
        req, key = RawWS.handshake_request(kw.pop("path", "/ws/echo"), headers=headers, **kw)
        with self.server.http() as c:
            c.send(req)
            return c.read_response(), key

    def assertJsonError(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        try:
            doc = resp.json()
        except ValueError:
            self.fail(f"error body is not JSON: {resp!r}")
        self.assertEqual(doc.get("status"), status, resp)
        self.assertIsInstance(doc.get("error"), str, resp)

    def test_rfc_sample_key(self):
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        resp, _ = self.raw_handshake(key=key)
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertTrue(resp.has_token("Upgrade", "websocket"), resp)
        self.assertTrue(resp.has_token("Connection", "upgrade"), resp)
        self.assertIsNone(resp.header("Sec-WebSocket-Protocol"), "no subprotocol offered, none may be chosen")

    def test_case_insensitive_tokens(self):
        resp, key = self.raw_handshake(upgrade="WebSocket", connection="keep-alive, Upgrade")
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("Sec-WebSocket-Accept"), ws_accept(key))
        resp, key = self.raw_handshake(upgrade="websocket", connection="UPGRADE")
        self.assertEqual(resp.status, 101, resp)

    def test_post_405(self):
        resp, _ = self.raw_handshake(method="POST")
        self.assertJsonError(resp, 405)

    def test_missing_upgrade_426(self):
        resp, _ = self.raw_handshake(upgrade=None)
        self.assertJsonError(resp, 426)
        self.assertTrue(resp.has_token("Upgrade", "websocket"),
                        f"426 must carry 'Upgrade: websocket' (RFC 7231 6.5.15): {resp!r}")

    def test_connection_without_upgrade_400(self):
        resp, _ = self.raw_handshake(connection="keep-alive")
        self.assertJsonError(resp, 400)

    def test_wrong_version_426(self):
        for v in ("8", "12", "14", "abc"):
            with self.subTest(version=v):
                resp, _ = self.raw_handshake(version=v)
                self.assertJsonError(resp, 426)
                self.assertEqual(resp.header("Sec-WebSocket-Version"), "13", resp)

    def test_missing_version(self):
        resp, _ = self.raw_handshake(version=None)
        self.assertIn(resp.status, (400, 426), resp)
        self.assertJsonError(resp, resp.status)

    def test_bad_keys_400(self):
        for key in (False, "", "not base64 !!", base64.b64encode(b"x" * 15).decode(),
                    base64.b64encode(b"x" * 17).decode(), "dGhlIHNhbXBsZSBub25jZQ"):
            with self.subTest(key=key):
                resp, _ = self.raw_handshake(key=key)
                self.assertJsonError(resp, 400)

    def test_origin_allowed(self):
        w = self.ws(headers={"Origin": "https://good.example"})
        self.assertEcho(w, OP_TEXT, "origin ok")

    def test_no_origin_allowed(self):
        w = self.ws()
        self.assertEcho(w, OP_TEXT, "no origin")

    def test_origin_forbidden_403(self):
        for origin in ("https://evil.example", "http://good.example", "https://good.example.evil.com", "null"):
            with self.subTest(origin=origin):
                resp, _ = self.raw_handshake(headers={"Origin": origin})
                self.assertJsonError(resp, 403)

    def test_subprotocol_server_preference(self):
        w = self.ws(protocols=["superchat", "chat"])
        self.assertEqual(w.response.header("Sec-WebSocket-Protocol"), "chat")
        self.assertEcho(w, OP_TEXT, "subprotocol")

    def test_subprotocol_only_one_match(self):
        w = self.ws(protocols=["other", "superchat"])
        self.assertEqual(w.response.header("Sec-WebSocket-Protocol"), "superchat")

    def test_subprotocol_in_two_header_lines(self):
        w = self.ws(headers=[("Sec-WebSocket-Protocol", "superchat"), ("Sec-WebSocket-Protocol", "chat")])
        self.assertEqual(w.response.header("Sec-WebSocket-Protocol"), "chat")

    def test_subprotocol_no_match(self):
        w = self.ws(protocols=["graphql-ws"])
        self.assertIsNone(w.response.header("Sec-WebSocket-Protocol"), w.response)
        self.assertEcho(w, OP_TEXT, "no subprotocol")

    def test_deflate_negotiated(self):
        w = self.ws(extensions="permessage-deflate; client_max_window_bits")
        ext = w.response.header("Sec-WebSocket-Extensions")
        self.assertIsNotNone(ext, w.response)
        params = [p.strip().lower() for p in ext.split(";")]
        self.assertEqual(params[0], "permessage-deflate", ext)
        self.assertIn("server_no_context_takeover", params, ext)
        self.assertIn("client_no_context_takeover", params, ext)

    def test_deflate_offer_with_unknown_param_declined(self):
        # RFC 7692 5.1: an offer with an unknown parameter must be declined.
        w = self.ws(extensions="permessage-deflate; x-unknown=1")
        ext = w.response.header("Sec-WebSocket-Extensions")
        self.assertTrue(ext is None or "permessage-deflate" not in ext.lower(), w.response)

    def test_deflate_second_offer_taken(self):
        w = self.ws(extensions="permessage-deflate; x-unknown=1, permessage-deflate")
        ext = w.response.header("Sec-WebSocket-Extensions") or ""
        self.assertIn("permessage-deflate", ext.lower(), w.response)
        self.assertNotIn("x-unknown", ext.lower(), w.response)

    def test_unknown_extension_not_accepted(self):
        w = self.ws(extensions="x-webkit-frobnicate")
        self.assertIsNone(w.response.header("Sec-WebSocket-Extensions"), w.response)

    def test_unknown_ws_path_404(self):
        resp, _ = self.raw_handshake(path="/ws/nowhere")
        self.assertEqual(resp.status, 404, resp)


class TestNoDeflate(WSCase):
    server_args = ("--websocket.deflate", "false")
    offer = "permessage-deflate; client_max_window_bits"

    def test_offer_declined(self):
        w = self.ws()
        self.assertIsNone(w.response.header("Sec-WebSocket-Extensions"), w.response)
        self.assertEcho(w, OP_TEXT, "plain")

    def test_rsv1_is_error_when_not_negotiated(self):
        w = self.ws()
        w.send_frame(OP_TEXT, deflate_bytes(b"compressed?"), rsv1=True)
        w.expect_close(1002)


# --------------------------------------------------------------------------
# permessage-deflate with raw frames
# --------------------------------------------------------------------------


class TestDeflate(WSCase):
    offer = "permessage-deflate; client_max_window_bits"

    def ws(self, **kw):
        w = super().ws(**kw)
        self.assertTrue(w.deflate, f"permessage-deflate not negotiated: {w.response!r}")
        return w

    def test_compressed_text_echo(self):
        w = self.ws()
        msg = ("Herald compresses this text. " * 400).encode()
        w.send_compressed(OP_TEXT, msg)
        self.assertEqual(w.recv_message(), (OP_TEXT, msg))

    def test_compressed_binary_echo(self):
        w = self.ws()
        msg = bytes(range(256)) * 300 + os.urandom(5000)
        w.send_compressed(OP_BINARY, msg)
        self.assertEqual(w.recv_message(), (OP_BINARY, msg))

    def test_reply_is_compressed(self):
        # a large, very compressible message: the echo should come back
        # compressed (RSV1) and inflate to the same bytes.
        w = self.ws()
        msg = b"a" * 100000
        w.send_compressed(OP_BINARY, msg)
        f = w.recv_frame()
        self.assertTrue(f.rsv1, f"large compressible reply not compressed: {f!r}")
        self.assertTrue(f.fin)
        self.assertLess(len(f.payload), 10000)
        self.assertEqual(inflate_bytes(f.payload), msg)

    def test_many_compressed_messages(self):
        w = self.ws()
        for i in range(20):
            msg = (f"message {i} " * (i * 10 + 1)).encode()
            w.send_compressed(OP_TEXT, msg)
            self.assertEqual(w.recv_message(), (OP_TEXT, msg))

    def test_uncompressed_message_on_deflate_connection(self):
        w = self.ws()
        self.assertEcho(w, OP_TEXT, "not compressed")
        self.assertEcho(w, OP_BINARY, os.urandom(70000))

    def test_compressed_empty_message(self):
        w = self.ws()
        w.send_compressed(OP_TEXT, b"")
        self.assertEqual(w.recv_message(), (OP_TEXT, b""))

    def test_compressed_with_bfinal_block(self):
        # RFC 7692 7.2.3.4: a sender may end a message with a BFINAL block.
        w = self.ws()
        msg = b"final block " * 50
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        comp = c.compress(msg) + c.flush(zlib.Z_FINISH)
        w.send_frame(OP_BINARY, comp, rsv1=True)
        self.assertEqual(w.recv_message(), (OP_BINARY, msg))

    def test_compressed_fragmented(self):
        w = self.ws()
        msg = ("fragmented and compressed \u20ac " * 300).encode()
        w.send_compressed(OP_TEXT, msg, fragments=3)
        self.assertEqual(w.recv_message(), (OP_TEXT, msg))

    def test_compressed_fragmented_with_ping(self):
        w = self.ws()
        msg = os.urandom(2000) + b"z" * 20000
        comp = deflate_bytes(msg)
        half = len(comp) // 2
        w.send_raw(frame(OP_BINARY, comp[:half], fin=False, rsv1=True) + frame(OP_PING, b"between")
                   + frame(OP_CONT, comp[half:]))
        pongs = []
        self.assertEqual(w.recv_message(answer_pings=False, pongs=pongs), (OP_BINARY, msg))
        if not pongs:  # the pong may also come after the echo
            f = w.recv_frame()
            self.assertEqual(f.opcode, OP_PONG, f)
            pongs.append(f.payload)
        self.assertEqual(pongs, [b"between"])

    def test_compressed_utf8_split_inside(self):
        w = self.ws()
        msg = "\U0001d11e\u20ac\u00e9".encode() * 2000
        w.send_compressed(OP_TEXT, msg, fragments=7)
        self.assertEqual(w.recv_message(), (OP_TEXT, msg))

    def test_rsv1_on_continuation_1002(self):
        w = self.ws()
        comp = deflate_bytes(b"abc" * 100)
        w.send_raw(frame(OP_TEXT, comp[:5], fin=False, rsv1=True) + frame(OP_CONT, comp[5:], rsv1=True))
        w.expect_close(1002)

    def test_rsv1_on_ping_1002(self):
        w = self.ws()
        w.send_frame(OP_PING, b"compressed ping?", rsv1=True)
        w.expect_close(1002)

    def test_rsv1_on_close_1002(self):
        w = self.ws()
        w.send_frame(OP_CLOSE, close_payload(1000), rsv1=True)
        w.expect_close(1002)

    def test_rsv2_with_deflate_1002(self):
        w = self.ws()
        w.send_frame(OP_TEXT, b"rsv2", rsv2=True)
        w.expect_close(1002)

    def test_corrupt_compressed_data_1007(self):
        for bad in (b"\xff\xff\xff\xff", b"\x07\x00\xab\xcd\xef" + os.urandom(64)):
            with self.subTest(bad=bad[:8]):
                w = self.ws()
                w.send_frame(OP_BINARY, bad, rsv1=True)
                w.expect_close(1007)

    def test_compressed_invalid_utf8_1007(self):
        w = self.ws()
        w.send_frame(OP_TEXT, deflate_bytes(b"valid then \xed\xa0\x80 invalid" * 10), rsv1=True)
        w.expect_close(1007)

    def test_compressed_fragmented_invalid_utf8_fails_fast(self):
        # fail-fast applies to compressed text too: the first fragment
        # inflates to invalid UTF-8; no FIN is ever sent.
        w = self.ws()
        comp = deflate_bytes(b"ok so far \xed\xa0\x80 then invalid " * 50)
        w.send_frame(OP_TEXT, comp, fin=False, rsv1=True)
        w.expect_close(1007, timeout=3)

    def test_compressed_zip_bomb_default_limit_1009(self):
        # 20 MiB of zeros compress to ~20 KiB: above the default 16 MiB limit.
        w = self.ws()
        bomb = deflate_bytes(b"\x00" * (20 * MiB), level=9)
        self.assertLess(len(bomb), 64 * KiB)
        w.send_frame(OP_BINARY, bomb, rsv1=True)
        w.expect_close(1009, timeout=10)

    def test_server_still_healthy(self):
        self.assertStillServing()


class TestDeflateLimits(WSCase):
    server_args = ("--websocket.echo-max-message-size", "1MiB")
    offer = "permessage-deflate"

    def test_zip_bomb_1009(self):
        w = self.ws()
        self.assertTrue(w.deflate, w.response)
        bomb = deflate_bytes(b"\x00" * (8 * MiB), level=9)
        self.assertLess(len(bomb), 16 * KiB)
        w.send_frame(OP_BINARY, bomb, rsv1=True)
        w.expect_close(1009, timeout=5)

    def _fragmented_bomb(self, fin):
        w = self.ws()
        bomb = deflate_bytes(b"A" * (4 * MiB), level=9)
        parts = [bomb[i:i + 512] for i in range(0, len(bomb), 512)]
        raw = frame(OP_TEXT, parts[0], fin=False, rsv1=True)
        raw += b"".join(frame(OP_CONT, p, fin=False) for p in parts[1:])
        if fin:
            raw += frame(OP_CONT, b"", fin=True)
        try:
            w.send_raw(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        w.expect_close(1009, timeout=5)

    def test_zip_bomb_fragmented_1009(self):
        self._fragmented_bomb(fin=True)

    def test_zip_bomb_fragmented_fails_fast(self):
        # 8 compressed fragments (4 KiB) inflating to 4 MiB, and no FIN: the
        # inflated size already exceeds the 1 MiB limit, so the close must
        # come without waiting for the end of the message.
        self._fragmented_bomb(fin=False)

    def test_compressed_at_limit_ok(self):
        w = self.ws()
        msg = b"q" * MiB
        w.send_compressed(OP_BINARY, msg)
        self.assertEqual(w.recv_message(timeout=10), (OP_BINARY, msg))


if __name__ == "__main__":
    main()
