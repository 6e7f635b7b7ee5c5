#!/usr/bin/env python3
"""Issue 12, connection layer: what one client can make the server hold.

Each test attacks a real `herald` (one worker, so a well-behaved Prober on
the same worker sees any stall), samples the server's RSS / open fds from
/proc while it does (PeakSampler), and asserts the bound and the prober's
p99 (PROBE_P99, docs/security.md "Resource bounds"):

  - pipelining GET /health without reading (item 2): reading pauses, RSS
    stays flat; with reading, the input held stays capped;
  - pipelining GET of a static file without reading (item 4a): at most
    http.max_queued_files descriptors per connection;
  - more connections than descriptors (item 4b, RLIMIT_NOFILE lowered for
    the server): accepting pauses instead of spinning, the log stays short,
    and a new client is served once the flood is gone;
  - a ping flood from a client that never reads (item 7): one pong queued;
  - a connection that never sends a byte (item 8): closed after
    http.header_timeout, not keepalive_timeout;
  - a reply that overflows websocket.max_queued_bytes (item 8): close 3008;
  - pipelined answers read slowly are all delivered (keepalive_timeout does
    not cut a client that reads), and a client reading none is closed.
"""
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (OP_PING, OP_PONG, OP_TEXT, SANITIZE, SLOW, Herald, HeraldTestCase, HttpConn,  # noqa: E402
                            PeakSampler, Prober, RawWS, build_frame, build_request, main, proc_fd_count,
                            proc_rss_bytes)

MiB = 1 << 20
PROBE_P99 = 0.25 * SLOW   # a well-behaved client's /health round trip while another client attacks
ATTACK_S = 3.0            # seconds of each flood
# RSS growth allowed during an attack: 48 MiB (the output queue pauses reading at 16 MiB, plus the
# allocator's slack); ASan keeps freed memory in quarantine (capped here) and adds redzones and shadow.
RSS_BOUND = 48 * MiB * (4 if SANITIZE else 1)
ENV = {"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:quarantine_size_mb=16"}


def flood(sock, chunk, seconds):
    """Send `chunk` over and over for `seconds` (non-blocking: a server that
    stops reading makes sends fail with EAGAIN), never stopping inside a
    chunk once the time is up; returns bytes sent."""
    sock.setblocking(False)
    sent, end, rest = 0, time.monotonic() + seconds, b""
    while rest or time.monotonic() < end:
        if time.monotonic() > end + 10 * SLOW:
            break
        try:
            n = sock.send(rest or chunk)
            rest = (rest or chunk)[n:]
            sent += n
        except BlockingIOError:
            time.sleep(0.002)
        except OSError:
            break
    return sent


def note(what, **numbers):
    """Print the figures measured (for docs/security.md and bug reports)."""
    sys.stderr.write(f"\n  [{what}] " + ", ".join(f"{k}={v}" for k, v in numbers.items()) + "\n")


def drain(sock, stop):
    """Read and drop everything `sock` receives until `stop` is set."""
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            if not sock.recv(1 << 20):
                return
        except (socket.timeout, BlockingIOError):
            continue
        except OSError:
            return


def static_root(size):
    """A temporary static directory holding f.bin of `size` bytes."""
    root = tempfile.mkdtemp(prefix="herald-bounds-")
    with open(os.path.join(root, "f.bin"), "wb") as f:
        f.write(b"x" * size)
    return root


class TestPipelining(HeraldTestCase):
    """Item 2: pipelined requests are read only as fast as they are answered."""
    server_workers = 1
    server_env = ENV

    def attack(self, read_answers):
        srv = self.server
        base = proc_rss_bytes(srv.proc.pid)
        s = socket.create_connection(srv.addr)
        stop = threading.Event()
        reader = threading.Thread(target=drain, args=(s, stop), daemon=True) if read_answers else None
        if reader:
            reader.start()
        req = build_request("GET", "/health") * 1000
        with PeakSampler(srv.proc.pid) as peak, Prober(srv.addr, pid=srv.proc.pid) as probe:
            sent = flood(s, req, ATTACK_S)
        stop.set()
        if reader:
            reader.join()
        s.close()
        return base, peak, probe, sent

    def test_pipelining_without_reading_is_paused(self):
        base, peak, probe, sent = self.attack(read_answers=False)
        grew = peak.peak_rss - base
        note("pipelining, not reading", rss_grew_mib=round(grew / MiB, 1), sent_mib=round(sent / MiB, 1),
             p99_ms=round(probe.p99() * 1000, 1),
             p99_less_wait_ms=round(probe.p99_less_wait() * 1000, 1))
        # before the fix: ~45 MB more per second of flood (275 MB after 6 s)
        self.assertLess(grew, RSS_BOUND, f"RSS grew {grew / MiB:.0f} MiB (sent {sent / MiB:.0f} MiB)")
        # the server stopped reading: what the client got into the socket is bounded too
        self.assertLess(sent, 64 * MiB, f"the server kept reading: {sent / MiB:.0f} MiB accepted")
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), PROBE_P99, probe.describe())

    def test_pipelining_while_reading_is_bounded(self):
        base, peak, probe, sent = self.attack(read_answers=True)
        grew = peak.peak_rss - base
        note("pipelining, reading", rss_grew_mib=round(grew / MiB, 1), sent_mib=round(sent / MiB, 1),
             p99_ms=round(probe.p99() * 1000, 1),
             p99_less_wait_ms=round(probe.p99_less_wait() * 1000, 1))
        self.assertLess(grew, RSS_BOUND, f"RSS grew {grew / MiB:.0f} MiB (sent {sent / MiB:.0f} MiB)")
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), PROBE_P99, probe.describe())
        # and the attacker's own connection still works
        with HttpConn(self.server.addr) as c:
            self.assertEqual(c.request("GET", "/health").status, 200)


class TestStaticFiles(HeraldTestCase):
    """Item 4a: queued static files (one descriptor each) are capped per connection."""
    server_workers = 1
    FILES = 16  # http.max_queued_files' default

    @classmethod
    def make_server(cls):
        cls.root = static_root(64 * 1024)
        return Herald("--static", cls.root, workers=1, env=ENV)

    def test_pipelined_files_hold_few_descriptors(self):
        srv = self.server
        base = proc_fd_count(srv.proc.pid)
        s = socket.create_connection(srv.addr)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = build_request("GET", "/f.bin")
        with PeakSampler(srv.proc.pid) as peak, Prober(srv.addr, pid=srv.proc.pid) as probe:
            flood(s, req * 200, ATTACK_S / 2)
            time.sleep(0.3)
        s.close()
        held = peak.peak_fds - base
        note("pipelined static files", fds_held=held, p99_ms=round(probe.p99() * 1000, 1),
             p99_less_wait_ms=round(probe.p99_less_wait() * 1000, 1))
        # before the fix: one descriptor per request answered (~2,000 here)
        self.assertLessEqual(held, self.FILES + 8, f"{held} descriptors held by one connection")
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), PROBE_P99, probe.describe())


def limited_herald(nofile, *args):
    """A Herald whose process starts with RLIMIT_NOFILE = nofile (soft and hard)."""
    class Limited(Herald):
        def argv(self):
            setlimit = ("import os, resource, sys; n = int(sys.argv[1]); "
                        "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])")
            return [sys.executable, "-c", setlimit, str(nofile)] + super().argv()
    return Limited(*args, workers=1, env=ENV)


class TestOutOfDescriptors(HeraldTestCase):
    """Item 4b: accept without descriptors pauses (server.accept_backoff) and
    warns rarely; max_connections is lowered to fit the limit."""
    server_workers = 1
    NOFILE = 96

    @classmethod
    def make_server(cls):
        cls.root = static_root(256 * 1024)
        return limited_herald(cls.NOFILE, "--static", cls.root)

    def accept_lines(self):
        # the warnings (the refusals' own conn_refused lines are rate-limited apart: test_logs.py)
        return [ln for ln in self.server.output().splitlines() if "accept" in ln and "conn_refused" not in ln]

    def test_out_of_descriptors(self):
        srv = self.server
        # fill the descriptor table with queued files, then knock
        holders = []
        for _ in range(10):
            s = socket.create_connection(srv.addr)
            s.sendall(build_request("GET", "/f.bin") * 40)
            holders.append(s)
        time.sleep(0.5 * SLOW)
        knockers = []
        for _ in range(40):
            try:
                knockers.append(socket.create_connection(srv.addr, timeout=1))
            except OSError:
                break
        time.sleep(0.2)
        self.assertTrue(self.accept_lines(), "the flood did not run the server out of descriptors")
        before = len(self.accept_lines())
        time.sleep(2.0)
        spun = len(self.accept_lines()) - before
        note("out of descriptors", accept_warnings_in_2s=spun, total=len(self.accept_lines()))
        # before the fix: ~100,000 "accept: Too many open files" lines a second
        self.assertLessEqual(spun, 3, f"{spun} accept warnings in 2 s:\n" + "\n".join(self.accept_lines()[-5:]))
        self.assertTrue(srv.alive())
        for s in knockers:
            s.close()
        # the holders read at last: each request was answered with the file, or with a 503 (temporary)
        # when the server had no descriptor left to open it, never with a 404
        statuses = []
        for s in holders:
            s.settimeout(10 * SLOW)
            conn = HttpConn(srv.addr, sock=s, timeout=10)
            for _ in range(40):
                r = conn.read_response(timeout=10)
                statuses.append(r.status)
                if r.status == 503:
                    self.assertTrue(r.json().get("temporary"), r.body)
            s.close()
        note("out of descriptors", answers={st: statuses.count(st) for st in set(statuses)})
        self.assertLessEqual(set(statuses), {200, 503})
        # the flood is gone: a new client is served
        deadline = time.monotonic() + 5 * SLOW
        while True:
            try:
                with HttpConn(srv.addr, timeout=2) as c:
                    self.assertEqual(c.request("GET", "/health").status, 200)
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.assertLess(len(self.accept_lines()), 20)
        # and max_connections was fitted to the descriptor limit at start-up
        self.assertIn("server.max_connections lowered", srv.output())


class TestPingFlood(HeraldTestCase):
    """Item 7: pings from a client that never reads queue one pong."""
    server_workers = 1
    server_env = ENV

    def test_ping_flood_without_reading(self):
        srv = self.server
        base = proc_rss_bytes(srv.proc.pid)
        w = RawWS.connect(srv.addr, "/ws/echo")
        pings = build_frame(OP_PING, b"") * 4096
        with PeakSampler(srv.proc.pid) as peak, Prober(srv.addr, pid=srv.proc.pid) as probe:
            sent = flood(w.sock, pings, ATTACK_S)
        grew = peak.peak_rss - base
        note("ping flood", rss_grew_mib=round(grew / MiB, 1), pings=sent // 6, p99_ms=round(probe.p99() * 1000, 1),
             p99_less_wait_ms=round(probe.p99_less_wait() * 1000, 1))
        # before the fix: ~8 bytes counted per queued pong, ~100 held: hundreds of MB
        self.assertLess(grew, RSS_BOUND, f"RSS grew {grew / MiB:.0f} MiB after {sent // 6} pings")
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), PROBE_P99, probe.describe())
        # the client reads at last: a few pongs, then its echo
        w.sock.setblocking(True)
        w.sock.settimeout(5 * SLOW)
        w.send_frame(OP_TEXT, b"still here")
        pongs = 0
        while True:
            f = w.recv_frame(timeout=10)
            if f.opcode == OP_PONG:
                pongs += 1
                continue
            self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"still here"))
            break
        note("ping flood", pongs_after=pongs)
        w.close_socket()


class TestFirstRequestTimeout(HeraldTestCase):
    """Item 8: a connection that never sends a byte gets header_timeout."""
    server_workers = 1
    server_args = ("--http.header-timeout", "1s")  # keepalive_timeout stays 60 s

    def test_silent_connection_closed_after_header_timeout(self):
        c = HttpConn(self.server.addr, timeout=5)
        t0 = time.monotonic()
        closed = c.wait_closed(timeout=4 * SLOW)
        took = time.monotonic() - t0
        c.close()
        self.assertTrue(closed, "a connection that sent nothing was still open after 4 s (header_timeout 1 s)")
        self.assertGreater(took, 0.8)

    def test_keepalive_after_a_request_still_waits(self):
        with HttpConn(self.server.addr, timeout=5) as c:
            self.assertEqual(c.request("GET", "/health").status, 200)
            time.sleep(1.5)
            self.assertEqual(c.request("GET", "/health").status, 200)


class TestSlowReader(HeraldTestCase):
    """Pipelined answers a client reads slowly are not cut by keepalive_timeout;
    a client that reads none is closed after it (the paused connection is not held)."""
    server_workers = 1

    @classmethod
    def make_server(cls):
        cls.root = static_root(256 * 1024)
        return Herald("--static", cls.root, "--http.keepalive-timeout", "1s", workers=1, env=ENV)

    def test_slow_reader_gets_every_answer(self):
        s = socket.create_connection(self.server.addr)
        s.sendall(build_request("GET", "/f.bin") * 80)  # 20 MiB of answers
        conn = HttpConn(self.server.addr, sock=s, timeout=10)
        t0 = time.monotonic()
        for i in range(80):
            r = conn.read_response(timeout=10)
            self.assertEqual((i, r.status, len(r.body)), (i, 200, 256 * 1024))
            time.sleep(0.04)  # ~3 s in all: three keep-alive timeouts
        note("slow reader", seconds=round(time.monotonic() - t0, 1))
        conn.close()

    def test_client_reading_nothing_is_closed(self):
        pid = self.server.proc.pid
        base = proc_fd_count(pid)
        s = socket.create_connection(self.server.addr)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(build_request("GET", "/f.bin") * 200)
        time.sleep(0.3)
        self.assertGreater(proc_fd_count(pid), base)  # its socket and queued files
        # reading would be progress: only watch the server's descriptors go
        deadline = time.monotonic() + 6 * SLOW  # two keep-alive timeouts without progress, and slack
        while proc_fd_count(pid) > base and time.monotonic() < deadline:
            time.sleep(0.1)
        held = proc_fd_count(pid) - base
        s.close()
        self.assertLessEqual(held, 0, "a client reading nothing is still held")


class TestQueueOverflowClose(HeraldTestCase):
    """Item 8: a reply that overflows websocket.max_queued_bytes ends with close 3008."""
    server_workers = 1
    server_args = ("--websocket.max-queued-bytes", "256KiB")

    def test_overflowing_reply_sends_close_3008(self):
        w = RawWS.connect(self.server.addr, "/ws/echo")
        w.send_frame(OP_TEXT, b"x" * (300 * 1024))
        f = w.expect_close(3008)
        w.close_socket()
        self.assertIn(b"slow consumer", f.close_reason())


if __name__ == "__main__":
    main()
