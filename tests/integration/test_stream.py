#!/usr/bin/env python3
"""HTTP streaming (/stream, /stream/send) against the real herald binary.

Written from docs/transports.md ("HTTP streaming"). Clients: raw sockets
reading the chunked NDJSON body (emu_client.Stream), curl, and the server
HTTP API to publish.

Covers: the response head (200, chunked, application/x-ndjson, no-cache,
X-Accel-Buffering, X-Herald-Session); the first line {"session", "cursor"};
commands posted to /stream/send on other connections, replies and
publications on the stream in order; resume after the stream ends
(?session=&cursor=) replaying exactly the lines after the cursor (410 for
a cursor older than one already sent), with
1,000 publications and repeated reconnects (no loss, no duplicate); a
cursor ahead (400), an unknown session (404); the session kept for
poll.session_ttl after its stream ends, then gone; heartbeats; SIGTERM ends
the stream with disconnect 3001; curl -N.
"""

import os
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, ConnectionClosed, Herald, HeraldTestCase, main  # noqa: E402
from herald_native import API_KEY, Api  # noqa: E402
from emu_client import EmuTestCase, Poller, Stream  # noqa: E402

_seq = [0]


def chan(prefix="stream"):
    _seq[0] += 1
    return f"{prefix}:{os.getpid()}-{_seq[0]}"


class StreamBase(EmuTestCase):

    def stream(self, session=None, cursor=None):
        s = Stream(self.server, session, cursor)
        self.clients.append(s)
        return s

    def sender(self, session):
        p = Poller(self.server, fresh=True)
        p.session = session
        self.clients.append(p)
        return p

    def send(self, session, *cmds, path="/stream/send"):
        p = self.sender(session)
        import json
        r = p.request("POST", f"{path}?session={session}", "\n".join(json.dumps(c) for c in cmds).encode())
        self.assertEqual(r.status, 202, r)

    def wait_id(self, st, cid):
        while True:
            m = st.next_line()
            if m.get("id") == cid:
                return m


class TestStream(StreamBase):
    def test_head_and_first_line(self):
        st = self.stream()
        head = st.head.decode()
        self.assertTrue(head.startswith("HTTP/1.1 200"), head)
        low = head.lower()
        for h in ("transfer-encoding: chunked", "content-type: application/x-ndjson", "cache-control: no-cache",
                  "x-accel-buffering: no", "x-herald-session: "):
            self.assertIn(h, low)
        first = st.start()
        self.assertEqual(len(first["session"]), 32)
        self.assertEqual(first["cursor"], 0)
        self.assertIn(f"x-herald-session: {first['session']}", low)

    def test_commands_and_publications(self):
        ch = chan()
        st = self.stream()
        st.start()
        self.send(st.session, {"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": ch}})
        self.assertIn("client", st.next_line()["result"])
        self.assertEqual(st.next_line(), {"id": 2, "result": {"channel": ch, **st.lines[-1]["result"]}})
        for i in range(50):
            self.api.call("publish", {"channel": ch, "data": i})
        got = [st.next_line()["pub"]["data"] for _ in range(50)]
        self.assertEqual(got, list(range(50)))
        # /poll/send reaches a streaming session too
        self.send(st.session, {"id": 3, "ping": {}}, path="/poll/send")
        self.assertEqual(self.wait_id(st, 3), {"id": 3, "result": {}})

    def test_resume_after_reconnects_no_loss(self):
        ch = chan()
        st = self.stream()
        st.start()
        sid = st.session
        self.send(sid, {"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": ch}})
        self.wait_id(st, 2)
        N = 1000
        done = threading.Event()

        def publisher():
            api = Api(self.server)
            try:
                for i in range(N):
                    api.call("publish", {"channel": ch, "data": i})
            finally:
                api.close()
                done.set()

        th = threading.Thread(target=publisher)
        th.start()
        offsets = []
        reconnects = 0
        deadline = time.monotonic() + 60 * SLOW
        while len(offsets) < N and time.monotonic() < deadline:
            for _ in range(37):  # read a few lines, then drop the stream and resume
                m = st.next_line(timeout=30)
                if "pub" in m:
                    offsets.append(m["pub"]["offset"])
                if len(offsets) >= N:
                    break
            cursor = st.cursor
            st.close()
            st = self.stream(sid, cursor)
            first = st.start()
            self.assertEqual(first, {"session": sid, "cursor": cursor})
            reconnects += 1
        th.join(30 * SLOW)
        self.assertGreater(reconnects, 10)
        self.assertEqual(offsets, list(range(1, N + 1)))

    def test_resume_replays_unread_lines(self):
        ch = chan()
        st = self.stream()
        st.start()
        sid = st.session
        self.send(sid, {"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": ch}})
        self.wait_id(st, 2)
        cursor = st.cursor
        st.close()
        for i in range(5):
            self.api.call("publish", {"channel": ch, "data": i})
        time.sleep(0.3)
        st2 = self.stream(sid, cursor)
        st2.start()
        self.assertEqual([st2.next_line()["pub"]["data"] for _ in range(5)], list(range(5)))
        # the same cursor again replays the same lines (the stream may have broken)
        st3 = self.stream(sid, cursor)
        st3.start()
        self.assertEqual(st3.next_line()["pub"]["data"], 0)
        # a cursor older than one already sent: those lines were dropped
        st4 = self.stream(sid, cursor - 1)
        self.assertTrue(st4.head.startswith(b"HTTP/1.1 410"), st4.head)

    def test_refusals(self):
        st = self.stream("f" * 32, 0)
        self.assertTrue(st.head.startswith(b"HTTP/1.1 404"), st.head)
        st0 = self.stream()
        st0.start()
        st = self.stream(st0.session, 99)
        self.assertTrue(st.head.startswith(b"HTTP/1.1 400"), st.head)
        p = self.sender(st0.session)
        r = p.request("POST", f"/stream/send?session={st0.session}", b"{bad")
        self.assertEqual(r.status, 400)
        r = p.request("GET", f"/stream/send?session={st0.session}")
        self.assertEqual(r.status, 405)

    def test_curl(self):
        ch = chan()
        st = self.stream()
        st.start()
        self.send(st.session, {"id": 1, "connect": {}})
        self.wait_id(st, 1)
        cur = st.cursor
        st.close()
        self.send(st.session, {"id": 2, "ping": {}})
        time.sleep(0.3)
        out = subprocess.run(["curl", "-sN", "--max-time", str(2 * SLOW),
                              f"http://{self.server.addr[0]}:{self.server.addr[1]}/stream?session={st.session}&cursor={cur}"],
                             capture_output=True, text=True)
        lines = out.stdout.strip().split("\n")
        self.assertEqual(lines[0], f'{{"session":"{st.session}","cursor":{cur}}}')
        self.assertEqual(lines[1], '{"id":2,"result":{}}')
        del ch


class TestStreamTtl(StreamBase):
    server_args = ("--api-key", API_KEY, "--poll.session-ttl", "3s", "--sse.heartbeat-interval", "1s")

    def test_heartbeat_and_expiry(self):
        st = self.stream()
        st.start()
        # a quiet stream gets heartbeat chunks (an empty line) and outlives the ttl
        st.conn.sock.settimeout(5)
        t0 = time.monotonic()
        data = b""
        while time.monotonic() - t0 < 4:
            data += st.conn.sock.recv(100)
        self.assertIn(b"1\r\n\n\r\n", data)
        sid = st.session
        st.close()
        time.sleep(0.5)
        st2 = self.stream(sid, 0)  # within the ttl after the stream ended (2.5 s to spare): still there
        self.assertTrue(st2.head.startswith(b"HTTP/1.1 200"), st2.head)
        st2.close()
        time.sleep(5.0)
        st3 = self.stream(sid, 0)
        self.assertTrue(st3.head.startswith(b"HTTP/1.1 404"), st3.head)


class TestStreamShutdown(HeraldTestCase):
    def test_sigterm_disconnects(self):
        with Herald("--api-key", API_KEY) as srv:
            st = Stream(srv)
            try:
                st.start()
                srv.signal(signal.SIGTERM)
                m = st.next_line()
                self.assertEqual(m["disconnect"]["code"], 3001)
                self.assertTrue(m["disconnect"]["reconnect"])
                with self.assertRaises(ConnectionClosed):
                    st.next_line()
            finally:
                st.close()
            srv.wait(10)


if __name__ == "__main__":
    main()
