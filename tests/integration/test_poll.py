#!/usr/bin/env python3
"""Long polling (/poll, /poll/open, /poll/send) against the real herald binary.

Written from docs/transports.md ("Long polling"). Clients: raw sockets
(emu_client.Poller), the server HTTP API to publish, python websockets
(herald_native.Native) and a raw SSE reader for the cross-transport test.

Covers: open (POST and GET without a session), connect + subscribe posted as
a frame, publications arriving in order; a held poll answered within about
a second of a publication, not at the timeout; the timeout's empty batch;
1,000 publications while the client re-polls on fresh connections (and
once with an older cursor): no loss, no duplicate, replays identical;
commands posted on other connections (both workers) than the polls;
refusals (404 unknown session, 400 bad frame / cursor, 405); CORS (allow-list,
preflight, foreign origin 403); session
expiry after poll.session_ttl; a slow consumer ended with disconnect 3008;
the same channel delivered in order over WebSocket, SSE, long polling and
HTTP streaming at once.
"""

import json
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, HttpConn, build_request, main  # noqa: E402
from herald_native import API_KEY, Api, Native, run  # noqa: E402
from emu_client import EmuTestCase, Poller, Stream  # noqa: E402

_seq = [0]


def chan(prefix="poll"):
    _seq[0] += 1
    return f"{prefix}:{os.getpid()}-{_seq[0]}"


class PollBase(EmuTestCase):

    def poller(self, fresh=False):
        p = Poller(self.server, fresh=fresh)
        self.clients.append(p)
        return p

    def publish(self, ch, data):
        return self.api.call("publish", {"channel": ch, "data": data})


class TestPoll(PollBase):
    server_args = ("--api-key", API_KEY, "--channels.publish", "anyone")  # client publish is opt-in
    def test_websocket_dropped_long_poll_takes_over_and_recovers(self):
        """The recovery position is the client's (epoch, offset): a session that
        falls back from WebSocket to long polling resumes exactly where it was."""
        ch = f"fallback:{os.getpid()}"
        for i in range(3):
            self.publish(ch, {"before": i})

        async def ws_part():
            c = await Native.open(self.server)
            sub = await c.result("subscribe", {"channel": ch})
            self.publish(ch, {"ws": 1})
            got = await c.pubs(1)
            await c.close()  # the WebSocket is gone (a proxy that blocks it, a network change...)
            return sub["epoch"], got[-1]["offset"]
        epoch, offset = run(ws_part())
        for i in range(10):
            self.publish(ch, {"missed": i})
        p = self.poller(fresh=True)
        p.open()
        p.command("connect")
        cid = p.command("subscribe", {"channel": ch, "recover": True, "epoch": epoch, "offset": offset})
        rep = p.wait_reply(cid)["result"]
        self.assertIs(rep["recovered"], True, rep)
        self.assertEqual([x["data"] for x in rep["publications"]], [{"missed": i} for i in range(10)])
        self.assertEqual([x["offset"] for x in rep["publications"]], list(range(offset + 1, offset + 11)))
        self.publish(ch, {"live": 1})
        deadline = time.monotonic() + 5 * SLOW
        while not p.pubs(ch) and time.monotonic() < deadline:
            p.poll(timeout=5)
        self.assertEqual([x["data"] for x in p.pubs(ch)], [{"live": 1}])

    def test_open_subscribe_publish_in_order(self):
        ch = chan()
        p = self.poller()
        p.open()
        rep = p.connect_subscribe(ch)
        self.assertEqual(rep["result"]["channel"], ch)
        connect = [m for m in p.lines.values() if m.get("id") == 1][0]
        self.assertIn("client", connect["result"])
        for i in range(20):
            self.publish(ch, {"n": i})
        deadline = time.monotonic() + 10 * SLOW
        while len(p.pubs(ch)) < 20 and time.monotonic() < deadline:
            p.poll()
        self.assertEqual([x["data"]["n"] for x in p.pubs(ch)], list(range(20)))
        self.assertEqual([x["offset"] for x in p.pubs(ch)], list(range(1, 21)))

    def test_get_without_session_opens_one(self):
        c = HttpConn(self.server.addr)
        r = c.request("GET", "/poll")
        c.close()
        self.assertEqual(r.status, 200)
        d = r.json()
        self.assertEqual(len(d["session"]), 32)
        self.assertEqual(d["cursor"], 0)
        self.assertEqual(r.header("X-Accel-Buffering"), "no")

    def test_held_poll_returns_on_publication(self):
        ch = chan()
        p = self.poller()
        p.open()
        p.connect_subscribe(ch)  # every line so far is read
        result = {}

        def waiter():
            t0 = time.monotonic()
            result["msgs"], _ = p.poll(timeout=30)
            result["t"] = time.monotonic() - t0

        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.8)
        t_pub = time.monotonic()
        self.publish(ch, "late")
        th.join(10 * SLOW)
        self.assertFalse(th.is_alive())
        self.assertEqual(result["msgs"][0]["pub"]["data"], "late")
        self.assertGreaterEqual(result["t"], 0.7)
        # answered right after the publication, not at poll.timeout (25 s)
        self.assertLess(result["t"], 0.8 + (time.monotonic() - t_pub) + 1.0)

    def test_thousand_publications_with_repolls(self):
        ch = chan()
        p = self.poller(fresh=True)  # a new connection (and so any worker) for every request
        p.open()
        p.connect_subscribe(ch)
        N = 1000
        done = threading.Event()

        def publisher():
            api = Api(self.server)
            try:
                for i in range(N):
                    api.call("publish", {"channel": ch, "data": {"n": i}})
            finally:
                api.close()
                done.set()

        th = threading.Thread(target=publisher)
        th.start()
        repolled = False
        deadline = time.monotonic() + 60 * SLOW
        while len(p.pubs(ch)) < N and time.monotonic() < deadline:
            before = p.cursor
            msgs, cur = p.poll(timeout=30)
            if not repolled and cur - before >= 3:
                # the answer "got lost": ask again from the older cursor
                again, cur2 = p.poll(cursor=before)
                self.assertGreaterEqual(cur2, cur)
                self.assertEqual(again[:len(msgs)], msgs)
                repolled = True
        th.join(30 * SLOW)
        self.assertTrue(repolled)
        offsets = [x["offset"] for x in p.pubs(ch)]
        self.assertEqual(offsets, list(range(1, N + 1)))  # no loss, no duplicate, in order

    def test_commands_on_other_connections_and_workers(self):
        # many sessions, each opened, commanded and polled on fresh connections:
        # with 2 workers and SO_REUSEPORT, sends and polls land on both
        chs = [chan() for _ in range(12)]
        ps = []
        for ch in chs:
            p = self.poller(fresh=True)
            p.open()
            p.connect_subscribe(ch)
            ps.append(p)
        # keep-alive connections too, held open so new ones spread further
        extra = [HttpConn(self.server.addr) for _ in range(8)]
        try:
            for i, ch in enumerate(chs):
                self.publish(ch, {"i": i})
            for i, (p, ch) in enumerate(zip(ps, chs)):
                deadline = time.monotonic() + 10 * SLOW
                while not p.pubs(ch) and time.monotonic() < deadline:
                    p.poll()
                self.assertEqual([x["data"] for x in p.pubs(ch)], [{"i": i}])
                # a client publish posted as a command, its reply polled elsewhere
                cid = p.command("publish", {"channel": ch, "data": "mine"})
                rep = p.wait_reply(cid)
                self.assertEqual(rep["result"]["offset"], 2, rep)
        finally:
            for c in extra:
                c.close()

    def test_history_and_presence_commands(self):
        ch = chan()
        self.publish(ch, 1)
        self.publish(ch, 2)
        p = self.poller()
        p.open()
        p.command("connect")
        cid = p.command("history", {"channel": ch, "limit": 10})
        rep = p.wait_reply(cid)
        self.assertEqual([x["data"] for x in rep["result"]["publications"]], [1, 2])
        # recover through a subscribe, as on /ws
        cid = p.command("subscribe", {"channel": ch, "recover": True, "epoch": rep["result"]["epoch"], "offset": 1})
        rep = p.wait_reply(cid)
        self.assertTrue(rep["result"]["recovered"], rep)
        self.assertEqual([x["data"] for x in rep["result"]["publications"]], [2])

    def test_refusals(self):
        p = self.poller()
        c = HttpConn(self.server.addr)
        try:
            r = c.request("GET", "/poll?session=" + "0" * 32 + "&cursor=0")
            self.assertEqual(r.status, 404)
            self.assertEqual(r.json(), {"error": "unknown session", "status": 404})
            r = c.request("POST", "/poll/send?session=" + "1" * 32, body=b'{"id":1,"connect":{}}')
            self.assertEqual(r.status, 404)
            r = c.request("GET", "/poll?session=short")
            self.assertEqual(r.status, 404)
            p.open()
            r = c.request("POST", f"/poll/send?session={p.session}", body=b"not json")
            self.assertEqual(r.status, 400)
            self.assertEqual(r.json()["status"], 400)
            r = c.request("POST", f"/poll/send?session={p.session}", body=b"")
            self.assertEqual(r.status, 400)
            r = c.request("POST", "/poll/send", body=b'{"id":1,"connect":{}}')
            self.assertEqual(r.status, 400)
            r = c.request("GET", f"/poll?session={p.session}&cursor=x")
            self.assertEqual(r.status, 400)
            r = c.request("GET", f"/poll?session={p.session}&cursor=5")
            self.assertEqual(r.status, 400)  # ahead of the session
            r = c.request("GET", "/poll/send")
            self.assertEqual(r.status, 405)
            self.assertIn("POST", r.header("Allow"))
            r = c.request("DELETE", "/poll")
            self.assertEqual(r.status, 405)
            frame = "\n".join(json.dumps({"id": i, "ping": {}}) for i in range(1, 1000))
            r = c.request("POST", f"/poll/send?session={p.session}", body=frame.encode())
            self.assertEqual(r.status, 400)  # channels.max_commands_per_frame
            # the session survived every refusal
            p.command("connect")
            self.assertIn("result", p.wait_reply(1))
        finally:
            c.close()

    def test_cors(self):
        c = HttpConn(self.server.addr)
        try:
            r = c.request("GET", "/poll", headers={"Origin": "https://evil.example"})
            self.assertEqual(r.status, 403)
            r = c.request("GET", "/poll", headers={"Origin": "http://127.0.0.1"})  # same origin as Host
            self.assertEqual(r.status, 200)
        finally:
            c.close()

    def test_same_channel_over_every_transport(self):
        ch = chan("all")
        N = 200
        p = self.poller()
        p.open()
        p.connect_subscribe(ch)
        st = Stream(self.server)
        self.clients.append(st)
        st.start()
        sp = Poller(self.server)
        self.clients.append(sp)
        sp.session = st.session
        sp.command("connect")
        sp.command("subscribe", {"channel": ch})
        while not any(m.get("id") == 2 for m in st.lines):
            st.next_line()
        sse = socket.create_connection(self.server.addr, timeout=10)
        sse.sendall(build_request("GET", f"/sse?channel={ch}"))
        sse_buf = b""
        while b"event: connected" not in sse_buf:
            sse_buf += sse.recv(65536)

        async def ws_part():
            ws = await Native.open(self.server)
            await ws.result("subscribe", {"channel": ch})
            ready.set()
            got = []
            while len(got) < N:
                push = await ws.push()
                if "pub" in push:
                    got.append(push["pub"]["offset"])
            await ws.close()
            return got

        ready = threading.Event()
        ws_res = {}
        th = threading.Thread(target=lambda: ws_res.setdefault("got", run(ws_part(), 60)))
        th.start()
        self.assertTrue(ready.wait(10 * SLOW))
        for i in range(N):
            self.publish(ch, {"n": i})
        deadline = time.monotonic() + 30 * SLOW
        while len(p.pubs(ch)) < N and time.monotonic() < deadline:
            p.poll()
        stream_offsets = []
        while len(stream_offsets) < N:
            m = st.next_line()
            if "pub" in m:
                stream_offsets.append(m["pub"]["offset"])
        sse.settimeout(10 * SLOW)
        while sse_buf.count(b'data: {"n":') < N:
            sse_buf += sse.recv(65536)
        sse.close()
        th.join(30 * SLOW)
        sse_ns = [json.loads(line[6:])["n"] for line in sse_buf.split(b"\n") if line.startswith(b'data: {"n":')]
        want = list(range(1, N + 1))
        self.assertEqual([x["offset"] for x in p.pubs(ch)], want)
        self.assertEqual(stream_offsets, want)
        self.assertEqual(sse_ns, list(range(N)))
        self.assertEqual(ws_res.get("got"), want)


class TestPollCors(PollBase):
    server_args = ("--api-key", API_KEY, "--sse.allowed-origins", "https://app.example")

    def test_allowed_origin_and_preflight(self):
        c = HttpConn(self.server.addr)
        try:
            o = {"Origin": "https://app.example"}
            r = c.request("POST", "/poll/open", headers=o)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://app.example")
            self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
            sid = r.json()["session"]
            r = c.request("OPTIONS", f"/poll/send?session={sid}",
                          headers={**o, "Access-Control-Request-Method": "POST",
                                   "Access-Control-Request-Headers": "content-type"})
            self.assertEqual(r.status, 200)
            self.assertIn("POST", r.header("Access-Control-Allow-Methods"))
            self.assertIn("Content-Type", r.header("Access-Control-Allow-Headers"))
            r = c.request("POST", f"/poll/send?session={sid}", headers=o, body=b'{"id":1,"connect":{}}')
            self.assertEqual(r.status, 202)
            self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://app.example")
            r = c.request("OPTIONS", "/poll", headers={"Origin": "https://other.example"})
            self.assertEqual(r.status, 403)
            r = c.request("GET", "/poll/open", headers=o)
            self.assertEqual(r.status, 405)
        finally:
            c.close()


class TestPollTimeouts(PollBase):
    server_args = ("--api-key", API_KEY, "--poll.timeout", "1s", "--poll.session-ttl", "2s")

    def test_timeout_returns_empty_batch(self):
        p = self.poller()
        p.open()
        p.connect_subscribe(chan())
        cur = p.poll()[1]
        t0 = time.monotonic()
        msgs, cur2 = p.poll()
        dt = time.monotonic() - t0
        self.assertEqual(msgs, [])
        self.assertEqual(cur2, cur)
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 3 * SLOW)
        # the connection is kept alive after a held poll
        msgs, _ = p.poll()
        self.assertEqual(msgs, [])

    def test_session_expires_after_ttl(self):
        p = self.poller()
        p.open()
        p.connect_subscribe(chan())
        p.poll()
        # a waiting poll keeps it alive past the ttl
        for _ in range(3):
            p.poll()
        r = p.request("GET", f"/poll?session={p.session}&cursor={p.cursor}")
        self.assertEqual(r.status, 200)
        time.sleep(4.0)
        r = p.request("GET", f"/poll?session={p.session}&cursor={p.cursor}")
        self.assertEqual(r.status, 404)
        r = p.request("POST", f"/poll/send?session={p.session}", b'{"id":9,"ping":{}}')
        self.assertEqual(r.status, 404)


class TestPollSlowConsumer(PollBase):
    server_args = ("--api-key", API_KEY, "--poll.max-queued-bytes", "4KiB")

    def test_slow_consumer_is_ended(self):
        ch = chan()
        p = self.poller()
        p.open()
        p.connect_subscribe(ch)
        for i in range(100):
            self.publish(ch, {"pad": "x" * 100, "n": i})
        msgs, _ = p.poll()
        self.assertEqual(msgs[-1], {"disconnect": {"code": 3008, "reason": "slow consumer: reconnect and recover",
                                                   "reconnect": True}})
        r = p.request("POST", f"/poll/send?session={p.session}", b'{"id":9,"ping":{}}')
        self.assertEqual(r.status, 404)
        # a new session recovers what the old one missed
        q = self.poller()
        q.open()
        q.command("connect")
        cid = q.command("subscribe", {"channel": ch, "recover": True, "epoch": p.lines[2]["result"]["epoch"],
                                      "offset": 95})
        rep = q.wait_reply(cid)
        self.assertTrue(rep["result"]["recovered"])
        self.assertEqual([x["data"]["n"] for x in rep["result"]["publications"]], [95, 96, 97, 98, 99])


if __name__ == "__main__":
    main()
