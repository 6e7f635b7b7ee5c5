#!/usr/bin/env python3
"""The server's log (docs/operations.md, "Logs"): --log-format json writes one
JSON object per line with time, level, event and escaped fields; text writes
one line per event with hostile values quoted and escaped; refused
connections are logged as conn_refused (remote, transport, path, status,
reason, user_agent) at most server.log_refused_rate lines a second per worker,
the suppressed ones counted."""
import json
import os
import re
import time
import unittest

from emu_client import Poller
from herald_native import Native, run
from herald_testlib import SLOW, Herald, HeraldTestCase, HttpConn, RawWS, main

# a channel name made to break a log line: quotes, a newline, control bytes, a
# NUL, invalid UTF-8 (percent-encoded) and a raw invalid UTF-8 byte in the URL
HOSTILE_Q = "%22%7D%0A%01%00x%FF%C3%28%7F"
HOSTILE_CHAN = b'"}\n\x01\x00x\xff\xc3(\x7f'
HOSTILE_UA = 'evil"}, {"level":"error" =x \\ \xe9\xff'
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def refuse(addr, n=1, origin=None):
    """n refused SSE requests (401: bad token) on one keep-alive connection,
    with the hostile channel and User-Agent."""
    with HttpConn(addr) as c:
        for _ in range(n):
            head = (f"GET /sse?channel={HOSTILE_Q}&token=abc HTTP/1.1\r\nHost: x\r\n"
                    f"User-Agent: {HOSTILE_UA}\r\n" + (f"Origin: {origin}\r\n" if origin else "") + "\r\n")
            c.send(head)
            resp = c.read_response()
            assert resp.status in (401, 403), resp


def json_lines(server):
    out = []
    for line in server.output().splitlines():
        out.append(json.loads(line))  # every line parses
    return out


class JsonFormat(HeraldTestCase):
    server_args = ("--log-format", "json", "--sse.allowed-origins", "https://good.example")
    server_workers = 1

    def test_every_line_is_json_and_hostile_values_round_trip(self):
        refuse(self.server.addr, 2)
        refuse(self.server.addr, 1, origin="https://evil.example")
        with HttpConn(self.server.addr) as c:  # normal activity
            self.assertEqual(c.request("GET", "/health").status, 200)
        time.sleep(0.1 * SLOW)
        self._expect_server_exit = True
        self.assertEqual(self.server.stop(), 0)
        lines = json_lines(self.server)
        for ev in lines:
            self.assertTrue(TIME_RE.match(ev["time"]), ev)
            self.assertIn(ev["level"], ("debug", "info", "warn", "error"))
            self.assertRegex(ev["event"], r"^[a-z][a-z0-9_]*$")
        events = [ev["event"] for ev in lines]
        self.assertIn("listening", events)
        self.assertIn("stopped", events)
        self.assertNotIn("worker", next(ev for ev in lines if ev["event"] == "listening"))
        refused = [ev for ev in lines if ev["event"] == "conn_refused"]
        self.assertEqual(len(refused), 3, lines)
        chan = HOSTILE_CHAN.decode("utf-8", "replace")
        for ev in refused:
            self.assertEqual(ev["level"], "info")
            self.assertEqual(ev["worker"], 0)
            self.assertEqual(ev["remote"], "127.0.0.1")
            self.assertEqual(ev["transport"], "sse")
            self.assertEqual(ev["path"], "/sse")
            self.assertEqual(ev["channel"], chan)
            self.assertEqual(ev["user_agent"], HOSTILE_UA.encode("latin-1").decode("utf-8", "replace"))
        self.assertEqual([(ev["status"], ev["reason"]) for ev in refused],
                         [(401, "token"), (401, "token"), (403, "origin")])


class TextFormat(HeraldTestCase):
    server_args = ("--log-format", "text")
    server_workers = 1

    def test_every_event_is_one_line_with_quoted_values(self):
        refuse(self.server.addr, 1)
        time.sleep(0.1 * SLOW)
        self._expect_server_exit = True
        self.assertEqual(self.server.stop(), 0)
        lines = self.server.output().splitlines()
        for line in lines:
            parts = line.split(" ", 3)
            self.assertTrue(TIME_RE.match(parts[0]), line)
            self.assertIn(parts[1], ("debug", "info", "warn", "error"), line)
            self.assertRegex(parts[2], r"^[a-z][a-z0-9_]*$", line)
        refused = [line for line in lines if line.split(" ")[2] == "conn_refused"]
        self.assertEqual(len(refused), 1, lines)
        line = refused[0]
        self.assertIn(' worker=0 remote=127.0.0.1 transport=sse path=/sse ', line)
        self.assertIn(' channel="\\"}\\n\\x01\\x00x\\xff\\xc3(\\x7f" ', line)
        self.assertIn(' user_agent="evil\\"}, {\\"level\\":\\"error\\" =x \\\\ \\xe9\\xff" ', line)
        self.assertIn(" status=401 reason=token ", line)


class RefusedRate(HeraldTestCase):
    server_args = ("--log-format", "json", "--server.log-refused-rate", "10",
                   "--sse.allowed-origins", "https://good.example")
    server_workers = 1

    def test_a_flood_is_bounded_and_counted(self):
        t0 = time.monotonic()
        for _ in range(10):
            refuse(self.server.addr, 100, origin="https://evil.example")
        elapsed = time.monotonic() - t0
        time.sleep(1.2)  # the bucket refills: the next line reports what was held back
        refuse(self.server.addr, 1, origin="https://evil.example")
        time.sleep(0.1 * SLOW)
        lines = json_lines(self.server)
        refused = [ev for ev in lines if ev["event"] == "conn_refused"]
        noted = [ev for ev in lines if ev["event"] == "log_suppressed"]
        self.assertLessEqual(len(refused), 10 + 10 * (elapsed + 1.3) + 1, (len(refused), elapsed))
        self.assertLessEqual(len(noted), elapsed + 3)
        self.assertGreaterEqual(sum(ev["suppressed"] for ev in refused), 1)
        total = len(refused) + sum(ev["suppressed"] for ev in refused) + sum(ev["count"] for ev in noted)
        self.assertEqual(total, 1001)
        if os.environ.get("HERALD_TEST_VERBOSE"):
            print(f"\n1,001 refusals in {elapsed:.2f} s: {len(refused)} conn_refused + {len(noted)} log_suppressed lines")


class Options(unittest.TestCase):
    def test_bad_format_is_refused(self):
        s = Herald("--log-format", "xml")
        with self.assertRaises(Exception):
            s.start()
        s.stop()


class WebSocketRefusals(HeraldTestCase):
    """The WebSocket front ends' refusals are conn_refused lines too: a
    handshake from a foreign Origin (403), a malformed handshake (400) and a
    native connect whose token does not verify (close 3500)."""
    server_args = ("--log-format", "json", "--websocket.allowed-origins", "https://good.example",
                   "--token-hmac-secret", "0123456789abcdef0123456789abcdef")
    server_workers = 1

    def test_handshake_and_connect_refusals(self):
        ua = ("User-Agent", HOSTILE_UA)
        RawWS.connect(self.server.addr, "/ws", headers=[ua, ("Origin", "https://evil.example")], expect_status=403)
        RawWS.connect(self.server.addr, "/ws/raw?channel=" + HOSTILE_Q, headers=[ua, ("Origin", "https://evil.example")],
                      expect_status=403)
        with HttpConn(self.server.addr) as c:
            resp = c.request("GET", "/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                    ("Sec-WebSocket-Version", "13"), ua])
            self.assertEqual(resp.status, 400)

        async def bad_token():
            c = await Native.open(self.server, connect=False)
            await c.error("connect", {"token": "garbage"})
        run(bad_token())
        time.sleep(0.1 * SLOW)
        refused = [ev for ev in json_lines(self.server) if ev["event"] == "conn_refused"]
        got = [(ev["transport"], ev.get("path"), ev.get("status", ev.get("code")), ev["reason"]) for ev in refused]
        self.assertEqual(got, [("ws", "/ws", 403, "origin"), ("ws_raw", "/ws/raw", 403, "origin"),
                               ("ws", "/ws", 400, "bad_request"), ("ws", None, 3500, "token")])
        self.assertEqual(refused[1]["channel"], HOSTILE_CHAN.decode("utf-8", "replace"))
        for ev in refused[:3]:
            self.assertEqual(ev["user_agent"], HOSTILE_UA.encode("latin-1").decode("utf-8", "replace"))
        self.assertTrue(all(ev["remote"] == "127.0.0.1" for ev in refused))


class LimitRefusals(HeraldTestCase):
    """Refusals by the abuse limits (limits.connections_per_ip) and by
    server.max_connections at accept are logged with reason limit."""
    server_args = ("--log-format", "json", "--limits.connections-per-ip", "1")
    server_workers = 1

    def test_per_ip_limit(self):
        with HttpConn(self.server.addr) as first:
            self.assertEqual(first.request("GET", "/health").status, 200)
            with HttpConn(self.server.addr) as second:
                resp = second.request("GET", "/sse?channel=x", headers=[("User-Agent", HOSTILE_UA)])
                self.assertEqual(resp.status, 503)
        time.sleep(0.1 * SLOW)
        refused = [ev for ev in json_lines(self.server) if ev["event"] == "conn_refused"]
        self.assertEqual([(ev["status"], ev["reason"], ev["remote"]) for ev in refused], [(503, "limit", "127.0.0.1")])


class OtherRefusals(HeraldTestCase):
    """A wrong API key and a native connect refused inside a /poll session."""
    server_args = ("--log-format", "json", "--api-key", "k" * 32,
                   "--token-hmac-secret", "0123456789abcdef0123456789abcdef")
    server_workers = 1

    def test_api_key_and_poll_session(self):
        with HttpConn(self.server.addr) as c:
            resp = c.request("POST", "/api/publish", headers=[("Authorization", "apikey nope")], body=b"{}")
            self.assertEqual(resp.status, 401)
        p = Poller(self.server)
        p.open()
        cid = p.command("connect", {"token": "garbage"})
        self.assertIn("error", p.wait_reply(cid))
        p.close()
        time.sleep(0.1 * SLOW)
        refused = [ev for ev in json_lines(self.server) if ev["event"] == "conn_refused"]
        got = [(ev["transport"], ev.get("path"), ev.get("status", ev.get("code")), ev["reason"]) for ev in refused]
        self.assertEqual(got, [("api", "/api/publish", 401, "token"), ("http_session", None, 3500, "token")])
        self.assertEqual(refused[0]["remote"], "127.0.0.1")
        self.assertIsNone(refused[1]["remote"])


if __name__ == "__main__":
    main()
