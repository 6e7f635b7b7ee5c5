#!/usr/bin/env python3
"""Server-Sent Events (/sse?channel=C) against the real herald binary.

Written from docs/transports.md. Clients: raw sockets (an event-stream
parser that follows the WHATWG rules a browser's EventSource applies:
fields, comments, the last-event-ID buffer, dispatch on a blank line), curl,
and the server HTTP API (herald_native.Api) to publish, disconnect and
unsubscribe.

Covers: the response head (text/event-stream, no-cache, X-Accel-Buffering,
close-delimited: no Content-Length, no chunked), ":ok", "retry:", the
`connected` event with the client id and the starting id; live delivery in
order on 20 streams (both workers), many channels on one stream (the id
carries every channel's position), patterns (no id, overlapping
subscriptions deliver once); heartbeat comments; resume after the server
ends the stream (API disconnect: `disconnect` event, then the end) with
Last-Event-ID or ?last_event_id=, exactly once and in order, the header
winning over the URL; recovery_failed (history trimmed, epoch unknown,
history removed, malformed id, a channel the id does not cover) next to a
recovered channel; join/leave and unsubscribe events; CORS (allow-list,
"*", same origin, foreign origin 403, preflight); refusals before the stream
(400 / 401 / 403 / 405 / 503 with the JSON error body); a slow consumer
whose stream ends while 10 others get everything, and which then resumes
without loss; SIGTERM sends `disconnect` with reconnect true; curl -N.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (SLOW, ConnectionClosed, Herald, HeraldTestCase, HttpConn, Response,  # noqa: E402
                            build_request, main, raise_nofile_limit)
from herald_native import API_KEY, Api, check_api_error, small_rcvbuf_socket  # noqa: E402

KEY_ARGS = ("--api-key", API_KEY)
ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,16}:\d+(\.[0-9A-Za-z_-]{1,16}:\d+)*$")

_seq = [0]


def chan(prefix="sse"):
    """A channel name unique within this test process."""
    _seq[0] += 1
    return f"{prefix}:{os.getpid()}-{_seq[0]}"


def sse_path(*channels, extra=""):
    q = "&".join("channel=" + urllib.parse.quote(c, safe="") for c in channels)
    return "/sse" + ("?" + q if q else "") + extra


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def parse_id(text):
    """The id's entries as [(epoch, offset)], in URL order."""
    assert ID_RE.match(text), f"malformed id {text!r}"
    return [(e, int(o)) for e, o in (x.split(":") for x in text.split("."))]


class Event:
    def __init__(self, type_, data, last_id, had_id):
        self.type = type_
        self.data = data
        self.last_id = last_id    # the stream's last event ID when this was dispatched (what a browser reports)
        self.had_id = had_id      # this event carried an id field

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return f"<Event {self.type} id={self.last_id!r}{'' if self.had_id else ' (inherited)'} {self.data[:80]!r}>"


class StreamClosed(AssertionError):
    pass


class SSE:
    """One /sse request on a raw socket and an event-stream parser.

    s = SSE(server, "/sse?channel=news")     # status and head in s.response
    ev = s.next()                             # next dispatched event
    s.collect()                               # from now on a thread appends events to s.events
    """

    def __init__(self, server, path, headers=None, rcvbuf=None, timeout=5.0, version="HTTP/1.1", extra=b""):
        addr = server.addr if hasattr(server, "addr") else server
        sock = small_rcvbuf_socket(addr, rcvbuf) if rcvbuf else None
        self.conn = HttpConn(addr, timeout=timeout, sock=sock)
        hdrs = [("Accept", "text/event-stream")] + list((headers or {}).items())
        self.conn.send(build_request("GET", path, hdrs, version=version) + extra)
        deadline = time.monotonic() + timeout * SLOW
        head = self.conn.read_head(deadline)
        lines = head[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"^HTTP/1\.1 (\d{3}) ", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers_ = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:]]
        self.response = Response("HTTP/1.1", int(m.group(1)), "", headers_, b"", head)
        self.status = self.response.status
        if self.status != 200:
            cl = self.response.header("Content-Length")
            assert cl is not None, f"error response without Content-Length: {head!r}"
            self.response.body = self.conn.read_exact(int(cl), deadline)
        self.type = ""
        self.data = []
        self.id_buf = ""
        self.had_id = False
        self.last_id = ""
        self.retry = None
        self.comments = []
        self.pending = []
        self.events = []          # filled by collect()
        self.closed = False
        self.thread = None
        self.raw = bytearray()    # every body byte received

    # -- parsing ---------------------------------------------------------------

    def _line(self, line):
        if "\r" in line:
            raise AssertionError(f"CR in the stream (the server frames lines with LF only): {line!r}")
        if line == "":
            self.last_id = self.id_buf
            if self.data:
                self.pending.append(Event(self.type or "message", "\n".join(self.data), self.last_id, self.had_id))
            self.type, self.data, self.had_id = "", [], False
            return
        if line.startswith(":"):
            self.comments.append(line[1:])
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.type = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.id_buf = value
                self.had_id = True
        elif name == "retry":
            if value.isdigit():
                self.retry = int(value)
        else:
            raise AssertionError(f"unknown field {name!r} sent")

    def _feed(self):
        buf = self.conn.buf
        while True:
            i = buf.find(b"\n")
            if i < 0:
                return
            line = bytes(buf[:i]).decode("utf-8")
            self.raw += buf[:i + 1]
            del buf[:i + 1]
            self._line(line)

    def _fill(self, deadline):
        try:
            self.conn._fill(deadline)
        except ConnectionClosed:
            self.closed = True
            raise StreamClosed("stream ended")

    def next(self, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            self._feed()
            if self.pending:
                return self.pending.pop(0)
            if self.closed:
                raise StreamClosed(f"stream ended (last id {self.last_id!r})")
            try:
                self._fill(deadline)
            except (socket.timeout, TimeoutError):
                raise AssertionError(f"no event within {timeout * SLOW:.1f}s; comments {self.comments[-3:]}")

    def next_n(self, n, timeout=10.0):
        return [self.next(timeout) for _ in range(n)]

    def until_closed(self, timeout=10.0):
        """Every event up to the end of the stream."""
        out = []
        while True:
            try:
                out.append(self.next(timeout))
            except StreamClosed:
                return out

    def quiet(self, seconds=0.3):
        """No event for `seconds` (comments are fine)."""
        deadline = time.monotonic() + seconds * SLOW
        while True:
            self._feed()
            if self.pending:
                raise AssertionError(f"unexpected events: {self.pending[:5]}")
            if self.closed:
                raise AssertionError("the stream ended")
            try:
                self._fill(deadline)
            except (socket.timeout, TimeoutError):
                return

    def collect(self):
        """Read in a thread from now on: events go to self.events until the stream ends."""
        def run():
            while True:
                try:
                    self.events.append(self.next(3600))
                except (StreamClosed, OSError, AssertionError):
                    return
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)  # wakes a reader thread blocked in recv
        except OSError:
            pass
        if self.thread:
            self.thread.join(5)
        self.conn.close()

    @property
    def client_id(self):
        return self.response.header("X-Herald-Client")


class Base(HeraldTestCase):
    server_args = KEY_ARGS

    def setUp(self):
        super().setUp()
        self.api = Api(self.server)
        self.streams = []

    def tearDown(self):
        for s in self.streams:
            s.close()
        self.api.close()
        super().tearDown()

    def sse(self, *channels, path=None, **kw):
        s = SSE(self.server, path or sse_path(*channels), **kw)
        self.streams.append(s)
        return s

    def open(self, *channels, **kw):
        """A stream that started: 200 and its connected event."""
        s = self.sse(*channels, **kw)
        self.assertEqual(s.status, 200, s.response)
        ev = s.next()
        self.assertEqual(ev.type, "connected", ev)
        s.connected = ev
        return s

    def refused(self, path, status, headers=None, method="GET"):
        """`path` answered `status` with the documented JSON error body; returns the message."""
        with HttpConn(self.server.addr) as c:
            resp = c.request(method, path, headers=headers)
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        check_api_error(resp.json(), status, path)
        return resp.json()["error"]

    def disconnect(self, s, **params):
        self.api.call("disconnect", {"client": s.client_id, **params})

    def wait_presence(self, channel, cid, present=True, timeout=5):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            ids = set(self.api.call("presence", {"channel": channel})["clients"])
            if (cid in ids) == present:
                return ids
            time.sleep(0.02)
        raise AssertionError(f"{cid} {'not ' if present else ''}in presence of {channel}: {ids}")


class TestStream(Base):
    server_args = KEY_ARGS + ("--channels.history-size", "100", "--sse.retry", "1500ms",
                              "--channels.max-subscriptions", "12",
                              "--namespace.short.history-size", "3",
                              "--namespace.room.join-leave", "true",
                              "--namespace.members.allow-anonymous", "false",
                              "--namespace.full.max-subscribers", "1")

    # -- the head and the start ---------------------------------------------------------

    def test_head_preamble_and_connected_event(self):
        a, p = chan(), "pat.*"
        s = self.sse(a, p)
        r = s.response
        self.assertEqual(s.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/event-stream")
        self.assertEqual(r.header("Cache-Control"), "no-cache")
        self.assertEqual(r.header("X-Accel-Buffering"), "no")
        self.assertEqual(r.header("Connection"), "close")
        self.assertIsNone(r.header("Content-Length"), r)
        self.assertIsNone(r.header("Transfer-Encoding"), r)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"), r)  # no Origin: no CORS headers
        self.assertRegex(s.client_id or "", r"^[0-9a-f]{32}$")
        ev = s.next()
        # the first bytes: a comment and the retry advice, before any event
        self.assertTrue(s.raw.startswith(b":ok\nretry: 1500\n\n"), bytes(s.raw[:40]))
        self.assertEqual(s.retry, 1500)
        self.assertEqual(s.comments[0], "ok")
        self.assertEqual(ev.type, "connected")
        self.assertEqual(ev.json(), {"client": s.client_id})
        self.assertTrue(ev.had_id)
        pos = parse_id(ev.last_id)
        self.assertEqual(len(pos), 1, "one entry per concrete channel (the pattern has none)")
        self.assertEqual(pos[0][1], 0)
        # the epoch is the channel's (as the API reports it)
        pub = self.api.publish(a, 1)
        self.assertEqual(pos[0][0], pub["epoch"])
        ev = s.next()
        self.assertEqual((ev.type, ev.data, parse_id(ev.last_id)), ("message", "1", [(pub["epoch"], 1)]))

    def test_publications_are_message_events_with_the_data(self):
        ch = chan()
        s = self.open(ch)
        values = [{"text": "hi", "n": 1}, [1, 2, {"a": None}], "a string", 42, -7, 0.1, True, None, {}, [],
                  {"z": 1, "a": 2, "u": "é\u2603"}, "line\nbreak \" \\ and \r"]
        for v in values:
            self.api.publish(ch, v)
        evs = s.next_n(len(values))
        self.assertEqual([e.type for e in evs], ["message"] * len(values))
        self.assertEqual([e.data for e in evs], [compact(v) for v in values])
        self.assertEqual([parse_id(e.last_id)[0][1] for e in evs], list(range(1, len(values) + 1)))
        self.assertTrue(all(e.had_id for e in evs))
        s.quiet(0.1)

    def test_20_streams_200_publications_exactly_once_in_order(self):
        n_streams, n_pubs = 20, 200
        ch = chan("fan")
        streams = [self.open(ch).collect() for _ in range(n_streams)]
        api = Api(self.server)
        try:
            for k in range(0, n_pubs, 20):
                api.batch_publish(ch, [{"i": i} for i in range(k, k + 20)])
        finally:
            api.close()
        want = [compact({"i": i}) for i in range(n_pubs)]
        deadline = time.monotonic() + 30 * SLOW
        while any(len(s.events) < n_pubs for s in streams) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1 * SLOW)  # anything extra would be a duplicate
        for i, s in enumerate(streams):
            self.assertEqual([e.data for e in s.events], want, f"stream {i}")
            self.assertEqual([parse_id(e.last_id)[0][1] for e in s.events], list(range(1, n_pubs + 1)))

    def test_many_channels_on_one_stream_id_carries_every_position(self):
        chans = [chan("many") for _ in range(10)]
        s = self.open(*chans)
        start = parse_id(s.connected.last_id)
        self.assertEqual([o for _, o in start], [0] * 10)
        epochs = [e for e, _ in start]
        self.assertEqual(len(set(epochs)), 10, "every channel has its own epoch")
        order = [(i * 7) % 10 for i in range(30)]  # interleaved publishes
        counts = [0] * 10
        for n, i in enumerate(order):
            self.api.publish(chans[i], {"c": i, "n": n})
        for n, i in enumerate(order):
            ev = s.next()
            self.assertEqual(ev.json(), {"c": i, "n": n})
            counts[i] += 1
            self.assertEqual(parse_id(ev.last_id), list(zip(epochs, counts)), f"after publication {n}")

    def test_envelope_names_the_channel_live_and_on_resume(self):
        a, b = chan("env"), chan("env")
        s = self.open(path=sse_path(a, b, extra="&envelope=1"))
        plain = self.open(a)  # the same publications without the envelope, on the same worker or not
        self.api.publish(a, {"x": 1})
        self.api.publish(b, [2])
        evs = s.next_n(2)
        self.assertEqual([e.json() for e in evs], [{"channel": a, "offset": 1, "data": {"x": 1}},
                                                  {"channel": b, "offset": 1, "data": [2]}])
        self.assertEqual(plain.next().json(), {"x": 1})
        last = evs[-1].last_id
        self.disconnect(s)
        self.api.publish(b, "missed")
        r = self.sse(path=sse_path(a, b, extra="&envelope=true"), headers={"Last-Event-ID": last})
        self.assertEqual(r.next().type, "connected")
        self.assertEqual(r.next().json(), {"channel": b, "offset": 2, "data": "missed"})
        r.quiet(0.2)

    def test_a_channel_twice_counts_once_and_percent_decoding(self):
        ch = chan("dup")
        s = self.open(path="/sse?channel=" + urllib.parse.quote(ch, safe="") + "&channel=" + ch.replace(":", "%3a")
                      + "&other=1&channel=" + urllib.parse.quote(ch, safe=""))
        self.assertEqual(len(parse_id(s.connected.last_id)), 1)
        self.api.publish(ch, "once")
        self.assertEqual(s.next().data, '"once"')
        s.quiet(0.2)

    def test_patterns_no_id_and_overlaps_deliver_once(self):
        p, a = f"pat{os.getpid()}", chan("mix")
        s = self.open(f"{p}.>", f"{p}.*.usd", f"{p}.btc", a)
        start = s.connected.last_id
        self.assertEqual(len(parse_id(start)), 2)  # p.btc and a
        self.api.publish(f"{p}.eth", "e1")          # one pattern
        self.api.publish(f"{p}.x.usd", "u1")        # two patterns: once
        self.api.publish(f"{p}.btc", "b1")          # exact + pattern: once, with the id
        self.api.publish(a, "a1")
        evs = s.next_n(4)
        self.assertEqual([e.data for e in evs], ['"e1"', '"u1"', '"b1"', '"a1"'])
        self.assertEqual([e.had_id for e in evs], [False, False, True, True])
        self.assertEqual(evs[0].last_id, start, "an event without an id keeps the last one")
        self.assertEqual([o for _, o in parse_id(evs[2].last_id)], [1, 0])
        self.assertEqual([o for _, o in parse_id(evs[3].last_id)], [1, 1])
        s.quiet(0.2)
        # a stream of patterns only: no id at all
        q = self.open(f"{p}.*")
        self.assertFalse(q.connected.had_id)
        self.api.publish(f"{p}.z", "z")
        ev = q.next()
        self.assertEqual((ev.data, ev.had_id, ev.last_id), ('"z"', False, ""))

    def test_pipelined_bytes_and_http10(self):
        ch = chan()
        s = self.open(ch, extra=b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # not read as a request
        self.api.publish(ch, 1)
        self.assertEqual(s.next().data, "1")
        self.assertNotIn(b"HTTP/1.1", bytes(s.raw))
        t = self.open(ch, version="HTTP/1.0")
        self.api.publish(ch, 2)
        self.assertEqual(t.next().data, "2")

    # -- resume ----------------------------------------------------------------------------

    def test_resume_after_api_disconnect_exactly_once_in_order(self):
        a, b = chan("res"), chan("res")
        s = self.open(a, b)
        for i in range(3):
            self.api.publish(a, {"a": i})
        self.api.publish(b, {"b": 0})
        evs = s.next_n(4)
        last = evs[-1].last_id
        self.disconnect(s)  # code 3000 by default: reconnect
        rest = s.until_closed()
        self.assertEqual([e.type for e in rest], ["disconnect"], rest)
        self.assertEqual(rest[0].json(), {"code": 3000, "reason": "disconnected by the server", "reconnect": True})
        self.assertEqual(rest[0].last_id, last, "the disconnect event carries no id")
        # published while the client is away
        for i in range(3, 8):
            self.api.publish(a, {"a": i})
        for i in range(1, 4):
            self.api.publish(b, {"b": i})
        r = self.sse(a, b, headers={"Last-Event-ID": last})
        self.assertEqual(r.status, 200)
        ev = r.next()
        self.assertEqual(ev.type, "connected")
        self.assertEqual(ev.last_id, last, "the starting id is where the client resumes from")
        missed = r.next_n(8)
        self.assertEqual([e.json() for e in missed], [{"a": i} for i in range(3, 8)] + [{"b": i} for i in range(1, 4)])
        self.assertEqual([[o for _, o in parse_id(e.last_id)] for e in missed],
                         [[4, 1], [5, 1], [6, 1], [7, 1], [8, 1], [8, 2], [8, 3], [8, 4]])
        # then live, nothing twice
        self.api.publish(a, {"a": 8})
        ev = r.next()
        self.assertEqual(ev.json(), {"a": 8})
        self.assertEqual([o for _, o in parse_id(ev.last_id)], [9, 4])
        r.quiet(0.2)

    def test_resume_with_the_query_parameter_and_the_header_wins(self):
        ch = chan("res")
        s = self.open(ch)
        self.api.publish(ch, 1)
        first = s.next().last_id
        self.api.publish(ch, 2)
        second = s.next().last_id
        self.api.publish(ch, 3)
        q = self.open(path=sse_path(ch, extra="&last_event_id=" + urllib.parse.quote(first, safe="")))
        self.assertEqual([e.data for e in q.next_n(2)], ["2", "3"])
        h = self.open(path=sse_path(ch, extra="&last_event_id=" + first), headers={"Last-Event-ID": second})
        self.assertEqual(h.next().data, "3")
        h.quiet(0.2)
        # an empty id is no id: live only
        z = self.open(ch, headers={"Last-Event-ID": ""})
        z.quiet(0.2)

    def test_recovery_failed_when_trimmed_next_to_a_recovered_channel(self):
        short, ok = chan("short"), chan("res")  # namespace short keeps 3 publications
        s = self.open(short, ok)
        self.api.publish(short, 0)
        self.api.publish(ok, 0)
        last = s.next_n(2)[-1].last_id
        self.disconnect(s)
        s.until_closed()
        for i in range(1, 11):
            self.api.publish(short, i)
        self.api.publish(ok, 1)
        r = self.sse(short, ok, headers={"Last-Event-ID": last})
        evs = [r.next() for _ in range(3)]
        self.assertEqual(evs[0].type, "connected")
        self.assertEqual(evs[0].last_id, last)
        epoch_short = parse_id(last)[0][0]
        # channels in URL order: short cannot be recovered, ok can
        self.assertEqual(evs[1].type, "recovery_failed")
        self.assertEqual(evs[1].json(), {"channel": short, "epoch": epoch_short, "offset": 11})
        self.assertEqual([o for _, o in parse_id(evs[1].last_id)], [11, 1], "the id moves to the current position")
        self.assertEqual((evs[2].type, evs[2].data), ("message", "1"))
        self.assertEqual([o for _, o in parse_id(evs[2].last_id)], [11, 2])
        self.api.publish(short, 11)
        ev = r.next()
        self.assertEqual((ev.data, [o for _, o in parse_id(ev.last_id)]), ("11", [12, 2]))
        r.quiet(0.2)

    def test_recovery_failed_wrong_epoch_removed_history_malformed_short_id(self):
        a, b = chan("res"), chan("res")
        s = self.open(a, b)
        (ea, _), (eb, _) = parse_id(s.connected.last_id)
        self.api.publish(a, 1)
        self.api.publish(b, 1)
        cases = [
            # (Last-Event-ID, events after connected as (type, data))
            (f"0000000000000000:0.{eb}:0", [("recovery_failed", {"channel": a, "epoch": ea, "offset": 1}),
                                            ("message", 1)]),
            (f"{ea}:0", [("message", 1), ("recovery_failed", {"channel": b, "epoch": eb, "offset": 1})]),
            ("not an id", [("recovery_failed", {"channel": a, "epoch": ea, "offset": 1}),
                           ("recovery_failed", {"channel": b, "epoch": eb, "offset": 1})]),
            (f"{ea}:5.{eb}:1", [("recovery_failed", {"channel": a, "epoch": ea, "offset": 1})]),  # ahead of the channel
            (f"{ea}:1.{eb}:1.x:9", []),  # extra entries are ignored; nothing missed
        ]
        for lid, want in cases:
            with self.subTest(last_event_id=lid):
                r = self.sse(a, b, headers={"Last-Event-ID": lid})
                self.assertEqual(r.next().type, "connected")
                got = [(e.type, e.json()) for e in r.next_n(len(want))]
                self.assertEqual(got, want)
                r.quiet(0.1)
                r.close()
        # history removed (epoch and offset stay): not recoverable
        self.api.call("history_remove", {"channel": a})
        self.api.publish(a, 2)
        r = self.sse(a, b, headers={"Last-Event-ID": f"{ea}:0.{eb}:1"})  # publication 1 is gone
        self.assertEqual(r.next().type, "connected")
        ev = r.next()
        self.assertEqual((ev.type, ev.json()), ("recovery_failed", {"channel": a, "epoch": ea, "offset": 2}))
        r.quiet(0.1)

    # -- events from the server ------------------------------------------------------------

    def test_join_leave_presence_and_api_unsubscribe(self):
        room, other = chan("room"), chan()
        s = self.open(room, other)
        self.wait_presence(room, s.client_id)
        self.assertEqual(s.next().type, "join")  # its own
        t = self.open(room)
        ev = s.next()
        self.assertEqual((ev.type, ev.json()), ("join", {"channel": room, "info": {"client": t.client_id, "user": ""}}))
        self.assertFalse(ev.had_id)
        t.close()
        ev = s.next()
        self.assertEqual((ev.type, ev.json()), ("leave", {"channel": room, "info": {"client": t.client_id, "user": ""}}))
        self.wait_presence(room, t.client_id, present=False)
        # the API removes one channel: event unsubscribe, the stream stays with the other
        self.api.call("unsubscribe", {"channel": room, "client": s.client_id, "reason": "moved"})
        ev = s.next()
        self.assertEqual((ev.type, ev.json()), ("unsubscribe", {"channel": room, "code": 2000, "reason": "moved"}))
        self.wait_presence(room, s.client_id, present=False)
        before = ev.last_id
        self.api.publish(room, "gone")
        self.api.publish(other, "still")
        ev = s.next()
        self.assertEqual(ev.data, '"still"')
        # the removed channel keeps its place (and position) in the id
        self.assertEqual([o for _, o in parse_id(ev.last_id)], [parse_id(before)[0][1], 1])
        s.quiet(0.2)

    def test_api_disconnect_codes(self):
        ch = chan()
        s = self.open(ch)
        self.disconnect(s, code=4001, reason="banned")
        evs = s.until_closed()
        self.assertEqual([(e.type, e.json()) for e in evs],
                         [("disconnect", {"code": 4001, "reason": "banned", "reconnect": False})])

    # -- refusals --------------------------------------------------------------------------

    def test_refusals_before_the_stream(self):
        ok = chan()
        for path, why in [("/sse", "missing channel"), ("/sse?chan=x", "missing channel"),
                          ("/sse?channel=", "invalid channel"), ("/sse?channel=a..b", "invalid channel"),
                          ("/sse?channel=a%zz", "percent-escape"), ("/sse?channel=nope%20x", "invalid channel"),
                          (sse_path(*[chan() for _ in range(13)]), "too many channels")]:
            with self.subTest(path=path[:60]):
                self.assertIn(why, self.refused(path, 400))
        for path, why in [(sse_path("#alice"), "user-limited"), (sse_path(ok, "dm:#a,b"), "user-limited"),
                          (sse_path(chan("members")), "anonymous")]:
            with self.subTest(path=path):
                self.assertIn(why, self.refused(path, 403))
        self.assertIn("token", self.refused(sse_path(ok, extra="&token=abc"), 401))
        for method in ("POST", "PUT", "DELETE", "HEAD"):
            with HttpConn(self.server.addr) as c:
                resp = c.request(method, sse_path(ok), body=b"x" if method in ("POST", "PUT") else b"")
            self.assertEqual(resp.status, 405, resp)
            self.assertEqual(resp.header("Allow"), "GET, OPTIONS")
        with HttpConn(self.server.addr) as c:
            resp = c.request("GET", sse_path(ok), headers={"Content-Length": "2"}, body=b"hi")
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("no body", resp.json()["error"])
        # nothing of the refused requests stayed subscribed
        self.assertEqual(self.api.call("presence", {"channel": ok})["clients"], {})
        # a full channel: 503, and the other channels of the request are released
        full = chan("full")
        s = self.open(full)
        self.assertIn("max_subscribers", self.refused(sse_path(ok, full), 503))
        self.assertEqual(self.api.call("presence", {"channel": ok})["clients"], {})
        s.close()
        self.wait_presence(full, s.client_id, present=False)
        self.open(ok, full)


class TestHeartbeat(Base):
    server_args = KEY_ARGS + ("--sse.heartbeat-interval", "300ms", "--sse.retry", "0")

    def test_heartbeat_comments_while_quiet_and_no_retry_line(self):
        ch = chan()
        s = self.open(ch)
        self.assertIsNone(s.retry)
        self.assertTrue(s.raw.startswith(b":ok\n\nevent: connected\n"), bytes(s.raw[:40]))
        t0 = time.monotonic()
        s.quiet(1.6)
        pings = [c for c in s.comments if c == " ping"]
        took = time.monotonic() - t0
        self.assertGreaterEqual(len(pings), 3, s.comments)
        self.assertLessEqual(len(pings), int(took / 0.3) + 1, s.comments)
        self.assertIn(b"\n: ping\n\n", bytes(s.raw))
        # a busy stream needs no heartbeat: publications keep it alive
        n = len(s.comments)
        for i in range(8):
            self.api.publish(ch, i)
            self.assertEqual(s.next().data, str(i))
            time.sleep(0.1)
        self.assertLessEqual(len(s.comments) - n, 2, s.comments)


class TestCors(Base):
    server_args = KEY_ARGS + ("--sse.allowed-origins", "https://good.example,http://also.example:8080")

    def test_allowed_foreign_and_same_origin(self):
        ch = chan()
        s = self.open(ch, headers={"Origin": "https://good.example"})
        r = s.response
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://good.example")
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
        self.assertEqual(r.header("Vary"), "Origin")
        self.open(ch, headers={"Origin": "http://also.example:8080"})
        for origin in ("https://evil.example", "http://good.example", "https://good.example.evil", "null"):
            with self.subTest(origin=origin):
                self.assertIn("origin", self.refused(sse_path(ch), 403, headers={"Origin": origin}))
        # the server's own origin (as Host names it) needs no entry and gets no CORS headers
        host = f"127.0.0.1:{self.server.port}"
        s = self.open(ch, headers={"Origin": f"http://{host}", "Host": host})
        self.assertIsNone(s.response.header("Access-Control-Allow-Origin"))
        self.open(ch, headers={"Origin": "http://localhost", "Host": "localhost:80"})
        self.refused(sse_path(ch), 403, headers={"Origin": "http://other:1234", "Host": host})

    def test_preflight(self):
        with HttpConn(self.server.addr) as c:
            resp = c.request("OPTIONS", "/sse", headers={"Origin": "https://good.example",
                                                         "Access-Control-Request-Method": "GET",
                                                         "Access-Control-Request-Headers": "last-event-id"})
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.header("Access-Control-Allow-Origin"), "https://good.example")
            self.assertEqual(resp.header("Access-Control-Allow-Credentials"), "true")
            self.assertIn("GET", resp.header("Access-Control-Allow-Methods"))
            self.assertIn("last-event-id", resp.header("Access-Control-Allow-Headers").lower())
            self.assertEqual(resp.body, b"")
            # the connection stays usable
            resp = c.request("GET", "/health")
            self.assertEqual(resp.status, 200)
        self.refused("/sse", 403, headers={"Origin": "https://evil.example",
                                           "Access-Control-Request-Method": "GET"}, method="OPTIONS")


class TestCorsDefaultsAndStar(Base):
    def test_default_is_same_origin_only(self):
        self.refused(sse_path(chan()), 403, headers={"Origin": "https://app.example"})
        self.open(chan())  # no Origin: not a browser

    def test_star(self):
        with Herald(*KEY_ARGS, "--sse.allowed-origins", "*") as srv:
            s = SSE(srv, sse_path(chan()), headers={"Origin": "https://anything.example"})
            try:
                self.assertEqual(s.status, 200)
                self.assertEqual(s.response.header("Access-Control-Allow-Origin"), "https://anything.example")
                self.assertEqual(s.next().type, "connected")
            finally:
                s.close()


class TestSlowConsumer(Base):
    server_args = KEY_ARGS + ("--sse.max-queued-bytes", "64KiB", "--websocket.close-timeout", "60s",
                              "--channels.history-size", "1000", "--channels.max-publication-size", "64KiB",
                              "--http.max-body-size", "4MiB")
    N_READERS = 10
    PUB_SIZE = 8000
    N_PUBS = 400
    WINDOW = 12

    def test_slow_stream_ends_others_get_everything_then_it_resumes(self):
        raise_nofile_limit()
        ch = chan("slow")
        pad = "p" * self.PUB_SIZE
        readers = [self.open(ch).collect() for _ in range(self.N_READERS)]
        slow = self.sse(ch, rcvbuf=4096, timeout=30)  # never reads until the end
        self.assertEqual(slow.status, 200)
        api = Api(self.server)
        published = 0
        try:
            while published < self.N_PUBS:
                api.batch_publish(ch, [{"seq": published + i, "pad": pad} for i in range(4)])
                published += 4
                deadline = time.monotonic() + 30 * SLOW
                while min(len(r.events) for r in readers) < published - self.WINDOW:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"readers stalled: {[len(r.events) for r in readers]} of {published}")
                    time.sleep(0.002)
            deadline = time.monotonic() + 30 * SLOW
            while min(len(r.events) for r in readers) < published and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            api.close()
        for i, r in enumerate(readers):
            self.assertFalse(r.closed, f"reader {i} ended")
            self.assertEqual([e.json()["seq"] for e in r.events], list(range(published)), f"reader {i}")
        # the slow one: complete events in order, then the end (no disconnect event: its queue was dropped)
        self.assertEqual(slow.next().type, "connected")
        got = [e for e in slow.until_closed(timeout=30)]
        self.assertTrue(all(e.type == "message" for e in got), got[-3:])
        seqs = [e.json()["seq"] for e in got]
        self.assertLess(len(seqs), published)
        self.assertEqual(seqs, list(range(len(seqs))), "events before the end: gap or disorder")
        self.assertIn("slow consumer", self.server.output())
        # it comes back with its last id and gets the rest, exactly once
        back = self.sse(ch, headers={"Last-Event-ID": slow.last_id}, timeout=30)
        self.assertEqual(back.next().type, "connected")
        rest = [e.json()["seq"] for e in back.next_n(published - len(seqs), timeout=30)]
        self.assertEqual(seqs + rest, list(range(published)))
        back.quiet(0.2)


class TestShutdown(unittest.TestCase):
    def test_sigterm_sends_disconnect_then_ends_the_stream(self):
        with Herald(*KEY_ARGS, "--sse.heartbeat-interval", "0") as srv:
            streams = [SSE(srv, sse_path("news", "other")) for _ in range(6)]  # over both workers
            try:
                for s in streams:
                    self.assertEqual(s.next().type, "connected")
                srv.signal(signal.SIGTERM)
                for s in streams:
                    evs = s.until_closed(timeout=10)
                    self.assertEqual([(e.type, e.json()) for e in evs],
                                     [("disconnect", {"code": 3001, "reason": "server shutting down, reconnect",
                                                      "reconnect": True})])
                self.assertEqual(srv.wait(10 * SLOW), 0, srv.output(20))
            finally:
                for s in streams:
                    s.close()


class TestCurl(Base):
    def test_curl_reads_the_stream_to_its_end(self):
        ch = chan("curl")
        proc = subprocess.Popen(["curl", "-sSN", "--max-time", str(int(20 * SLOW)), "-D", "-",
                                 self.server.url(sse_path(ch))], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10 * SLOW
            out = b""
            while not re.search(rb'"client":"([0-9a-f]{32})"', out):
                self.assertLess(time.monotonic(), deadline, out)
                out += os.read(proc.stdout.fileno(), 65536)
            m = re.search(rb'"client":"([0-9a-f]{32})"', out)
            for i in range(3):
                self.api.publish(ch, {"i": i})
            time.sleep(0.2 * SLOW)
            self.api.call("disconnect", {"client": m.group(1).decode()})
            rest, err = proc.communicate(timeout=10 * SLOW)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out += rest
        self.assertEqual(proc.returncode, 0, err)  # a close-delimited body ends cleanly for curl
        text = out.decode()
        self.assertIn("content-type: text/event-stream", text.lower())
        body = text.split("\r\n\r\n", 1)[1]
        self.assertEqual(re.findall(r"^data: (.*)$", body, re.M)[1:4], ['{"i":0}', '{"i":1}', '{"i":2}'])
        self.assertTrue(body.rstrip("\n").endswith('event: disconnect\ndata: {"code":3000,"reason":'
                                                    '"disconnected by the server","reconnect":true}'), body)


if __name__ == "__main__":
    main()
