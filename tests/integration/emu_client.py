"""emu_client - clients for Herald's long polling (/poll) and HTTP streaming
(/stream), written from docs/transports.md. Shared by test_poll.py and
test_stream.py.

  Poller   opens a session (POST /poll/open), posts frames (POST /poll/send),
           polls (GET /poll?session=&cursor=) on fresh or kept connections.
  Stream   GET /stream[?session=&cursor=] read as chunked NDJSON.
"""

import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import SLOW, ConnectionClosed, HttpConn, build_request  # noqa: E402
from herald_native import ApiTestCase  # noqa: E402


class Poller:
    def __init__(self, server, fresh=False):
        self.server = server
        self.fresh = fresh            # a new connection per request (spreads them over workers)
        self.conn = None
        self.session = None
        self.cursor = 0
        self.lines = {}               # seq -> line (dict)
        self.next_id = 1

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=b"", timeout=10.0, headers=None):
        if self.fresh or self.conn is None:
            self.close()
            self.conn = HttpConn(self.server.addr, timeout=timeout)
        try:
            resp = self.conn.request(method, path, headers, body, timeout=timeout)
        finally:
            if self.fresh:
                self.close()
        if not self.fresh and (resp.header("Connection") or "").lower() == "close":
            self.close()
        return resp

    def open(self):
        r = self.request("POST", "/poll/open")
        assert r.status == 200, r
        d = r.json()
        assert len(d["session"]) == 32 and int(d["session"], 16) >= 0, d
        assert d["cursor"] == 0, d
        self.session = d["session"]
        self.cursor = 0
        return self.session

    def send(self, *cmds, expect=202):
        frame = "\n".join(json.dumps(c) for c in cmds)
        r = self.request("POST", f"/poll/send?session={self.session}", frame.encode())
        assert r.status == expect, r
        return r

    def command(self, method, params=None):
        cid = self.next_id
        self.next_id += 1
        self.send({"id": cid, method: params or {}})
        return cid

    def poll(self, cursor=None, timeout=30.0):
        """One GET /poll; returns (messages, new cursor) and records lines by seq."""
        cur = self.cursor if cursor is None else cursor
        r = self.request("GET", f"/poll?session={self.session}&cursor={cur}", timeout=timeout)
        assert r.status == 200, r
        assert r.header("Cache-Control", "").startswith("no-cache"), r
        d = r.json()
        msgs = d["messages"]
        assert d["cursor"] == cur + len(msgs), (cur, d)
        for i, m in enumerate(msgs):
            seq = cur + 1 + i
            if seq in self.lines:
                assert self.lines[seq] == m, (seq, self.lines[seq], m)  # a replay is the same line
            self.lines[seq] = m
        self.cursor = max(self.cursor, d["cursor"])
        return msgs, d["cursor"]

    def wait_reply(self, cid, timeout=10.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            for m in self.lines.values():
                if m.get("id") == cid:
                    return m
            self.poll(timeout=timeout)
        raise AssertionError(f"no reply {cid}; lines {self.lines}")

    def connect_subscribe(self, *channels):
        self.command("connect")
        last = None
        for ch in channels:
            last = self.command("subscribe", {"channel": ch})
        rep = self.wait_reply(last)
        assert "result" in rep, rep
        return rep

    def pubs(self, channel=None):
        out = []
        for seq in sorted(self.lines):
            m = self.lines[seq]
            if "pub" in m and (channel is None or m["pub"]["channel"] == channel):
                out.append(m["pub"])
        return out


class Stream:
    """A chunked NDJSON stream on its own socket."""

    def __init__(self, server, session=None, cursor=None, timeout=10.0):
        self.conn = HttpConn(server.addr, timeout=timeout)
        path = "/stream"
        if session:
            path += f"?session={session}&cursor={cursor or 0}"
        self.conn.send(build_request("GET", path))
        deadline = time.monotonic() + timeout * SLOW
        self.head = self.conn.read_head(deadline)
        self.pending = []
        self.ended = False
        self.session = None
        self.cursor = None
        self.lines = []

    def status(self):
        return self.head

    def _chunk(self, deadline):
        size_line = self.conn.read_line(deadline)
        n = int(size_line.strip().split(b";")[0], 16)
        data = self.conn.read_exact(n, deadline) if n else b""
        crlf = self.conn.read_exact(2, deadline)
        assert crlf == b"\r\n", crlf
        if n == 0:
            self.ended = True
        return data

    def start(self, timeout=10.0):
        first = self.next_line(timeout)
        self.session = first["session"]
        self.cursor = first["cursor"]
        return first

    def next_line(self, timeout=10.0):
        deadline = time.monotonic() + timeout * SLOW
        buf = b""
        while not self.pending:
            if self.ended:
                raise ConnectionClosed("stream ended")
            buf += self._chunk(deadline)
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    self.pending.append(json.loads(line))
        assert not buf, buf  # chunks hold whole lines
        line = self.pending.pop(0)
        if self.session is not None:
            self.cursor += 1
            self.lines.append(line)
        return line

    def close(self):
        self.conn.close()


class EmuTestCase(ApiTestCase):
    """ApiTestCase whose Poller / Stream clients (in self.clients) are closed after each test."""

    def setUp(self):
        super().setUp()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        super().tearDown()
