#!/usr/bin/env python3
"""Resource bounds of HTTP emulation sessions and static files (docs/security.md,
"Resource bounds" / "HTTP sessions and static files"; issue 12 items 6 and 8).

  - sessions per address: 1,000 POST /poll/open over one keep-alive
    connection, every admitted session subscribed and sent 8 x 60 KB it
    never polls: poll.max_sessions_per_ip (100) are admitted, the rest get
    503 with a JSON body and Retry-After on the same (still open)
    connection; the server's RSS grows by a bounded amount while a
    well-behaved client on the same worker keeps its /health p99; another
    address still opens sessions; once the sessions expire
    (poll.session_ttl) the address gets its budget back;
  - one session's undelivered output: past poll.max_queued_bytes (1 MiB) it
    ends with a disconnect line 3008;
  - all sessions of a worker: 200 sessions from two addresses, each sent
    960 KB (under the per-session bound): poll.max_queued_bytes_per_worker
    (64 MiB) holds the RSS, the sessions over their share end with 3008;
  - static files: symbolic links leading out of server.static_dir (an
    absolute link, a relative ../ link, a linked directory) answer 404,
    links inside it are served, server.static_follow_symlinks = true
    serves them all;
  - GET //x of a directory redirects to /x/, never to //x/ (another host);
  - /http/echo answers application/octet-stream with nosniff, whatever
    Content-Type the request had.

Run with --workers 1 where a well-behaved client must share the attacker's
worker.
"""

import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (SANITIZE, SLOW, Herald, HeraldTestCase, HttpConn, PeakSampler, Prober,  # noqa: E402
                            build_request, main, proc_rss_bytes)
from herald_native import API_KEY, Api  # noqa: E402

MiB = 1024 * 1024
BIG = "x" * 60000          # one publication of about 60 KB
SESSIONS_PER_IP = 100      # poll.max_sessions_per_ip default
P99_LIMIT = 0.5 * SLOW     # a well-behaved client's /health round trip while attacked


def conn_from(addr, source):
    s = socket.create_connection(addr, timeout=10 * SLOW, source_address=(source, 0))
    return HttpConn(addr, timeout=10, sock=s)


def open_sessions(conn, n, channel):
    """POST /poll/open n times over conn (pipelined in batches); each admitted
    session gets connect + subscribe(channel). Returns (session ids, refusals)."""
    sids, refused = [], []
    frame = (json.dumps({"id": 1, "connect": {}}) + "\n" +
             json.dumps({"id": 2, "subscribe": {"channel": channel}})).encode()
    for start in range(0, n, 50):
        k = min(50, n - start)
        conn.send(build_request("POST", "/poll/open") * k)
        opened = []
        for _ in range(k):
            r = conn.read_response()
            if r.status == 200:
                opened.append(r.json()["session"])
            else:
                refused.append(r)
        for sid in opened:
            conn.send(build_request("POST", f"/poll/send?session={sid}", body=frame))
        for sid in opened:
            r = conn.read_response()
            assert r.status == 202, r
        sids += opened
    return sids, refused


def poll(conn, sid, cursor=0):
    r = conn.request("GET", f"/poll?session={sid}&cursor={cursor}", timeout=30)
    assert r.status == 200, r
    return r.json()


def wait_subscribed(conn, sid):
    """The session's subscribe reply arrived (commands run in order on the
    owner: the last session subscribed means every earlier one did)."""
    cursor = 0
    deadline = time.monotonic() + 10 * SLOW
    while time.monotonic() < deadline:
        d = poll(conn, sid, cursor)
        for m in d["messages"]:
            if m.get("id") == 2:
                assert "result" in m, m
                return d["cursor"]
        cursor = d["cursor"]
    raise AssertionError(f"session {sid}: no subscribe reply")


def publish(api, channel, count):
    for _ in range(count):
        api.call("publish", {"channel": channel, "data": BIG})


def ended_slow(conn, sid, cursor=0):
    """Polls the session's lines after cursor: True when its last line is the 3008 disconnect."""
    d = poll(conn, sid, cursor)
    last = d["messages"][-1] if d["messages"] else {}
    return last.get("disconnect", {}).get("code") == 3008


class TestSessionsPerAddress(HeraldTestCase):
    server_workers = 1
    server_args = ("--api-key", API_KEY, "--poll.session-ttl", "2s")

    def test_thousand_opens_over_one_connection(self):
        srv = self.server
        api = Api(srv)
        self.addCleanup(api.close)
        base = proc_rss_bytes(srv.proc.pid)
        with conn_from(srv.addr, "127.0.0.1") as c, PeakSampler(srv.proc.pid) as peak, Prober(srv.addr, pid=srv.proc.pid) as probe:
            t0 = time.monotonic()
            sids, refused = open_sessions(c, 1000, "bounds:open")
            opened_in = time.monotonic() - t0
            self.assertEqual(len(sids), SESSIONS_PER_IP)
            self.assertEqual(len(refused), 1000 - SESSIONS_PER_IP)
            r = refused[0]
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json()["status"], 503)
            self.assertIn("poll.max_sessions_per_ip", r.json()["error"])
            self.assertGreaterEqual(int(r.header("Retry-After")), 1, r)
            self.assertTrue(all(x.status == 503 for x in refused))
            # the connection is still usable
            self.assertEqual(c.request("GET", "/health").status, 200)
            wait_subscribed(c, sids[-1])
            last_request = time.monotonic()  # to any of the sessions
            publish(api, "bounds:open", 8)   # 480 KB for each admitted session, never polled
            time.sleep(0.5 * SLOW)
        grown = peak.peak_rss - base
        print(f"\n  1,000 opens in {opened_in:.2f} s: {len(sids)} admitted; RSS +{grown / MiB:.1f} MiB, "
              f"peak fds {peak.peak_fds}, {probe.describe()}",
              file=sys.stderr)
        # 100 x 480 KB = 48 MB held (before the limit: all 1,000 sessions, +461 MB)
        self.assertLess(grown, (120 if not SANITIZE else 240) * MiB)
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), P99_LIMIT, probe.describe())
        # another address is not limited by this one
        with conn_from(srv.addr, "127.0.0.2") as other:
            self.assertEqual(other.request("POST", "/poll/open").status, 200)
        # the sessions expire (poll.session_ttl 2 s after their last request, then the
        # next sweep, every second): the address has its whole budget back
        time.sleep(max(0.0, last_request + 2.0 + 1.0 + 0.5 * SLOW - time.monotonic()))
        with conn_from(srv.addr, "127.0.0.1") as c:
            more, refused = open_sessions(c, 1000, "bounds:again")
        self.assertEqual(len(more), SESSIONS_PER_IP)
        self.assertEqual(len(refused), 1000 - SESSIONS_PER_IP)


class TestSessionQueues(HeraldTestCase):
    server_workers = 1
    server_args = ("--api-key", API_KEY)

    def test_one_session_bounded(self):
        """1.2 MB of undelivered output: past poll.max_queued_bytes (1 MiB) the
        session ends as a slow consumer, its last line the 3008 disconnect."""
        api = Api(self.server)
        self.addCleanup(api.close)
        with conn_from(self.server.addr, "127.0.0.3") as c:
            sids, _ = open_sessions(c, 1, "bounds:one")
            cursor = wait_subscribed(c, sids[0])
            publish(api, "bounds:one", 20)
            d = poll(c, sids[0], cursor)
        last = d["messages"][-1]
        self.assertEqual(last.get("disconnect", {}).get("code"), 3008, str(last)[:200])
        self.assertTrue(last["disconnect"]["reconnect"])
        pubs = [m for m in d["messages"] if "pub" in m]
        self.assertLess(len(pubs) * len(BIG), 1 * MiB + len(BIG))

    def test_all_sessions_of_a_worker_bounded(self):
        """200 sessions (two addresses) each owed 16 x 60 KB = 960 KB, under the
        per-session bound: 192 MB without a worker budget; with
        poll.max_queued_bytes_per_worker (64 MiB) the sessions over their share
        are ended (3008) and the RSS stays near the budget."""
        srv = self.server
        api = Api(srv)
        self.addCleanup(api.close)
        base = proc_rss_bytes(srv.proc.pid)
        conns = [conn_from(srv.addr, "127.0.0.4"), conn_from(srv.addr, "127.0.0.5")]
        for c in conns:
            self.addCleanup(c.close)
        with PeakSampler(srv.proc.pid) as peak, Prober(srv.addr, pid=srv.proc.pid) as probe:
            sids = []
            for c in conns:
                got, refused = open_sessions(c, SESSIONS_PER_IP, "bounds:worker")
                self.assertEqual(len(got), SESSIONS_PER_IP)
                sids.append(got)
            cursors = {sids[1][-1]: wait_subscribed(conns[1], sids[1][-1])}
            publish(api, "bounds:worker", 16)
            time.sleep(0.5 * SLOW)
        grown = peak.peak_rss - base
        slow = sum(ended_slow(c, sid, cursors.get(sid, 0)) for c, group in zip(conns, sids) for sid in group)
        print(f"\n  200 sessions x 960 KB: RSS +{grown / MiB:.1f} MiB, {slow} ended 3008, "
              f"{probe.describe()}", file=sys.stderr)
        self.assertGreater(slow, 0)
        self.assertLess(grown, (110 if not SANITIZE else 220) * MiB)
        self.assertEqual(probe.failures, 0)
        self.assertLess(probe.p99_less_wait(), P99_LIMIT, probe.describe())


class StaticDir:
    """root/ with index.html, sub/, inner.html -> index.html, subl -> sub, and
    links out of it: abs.txt -> /…/outside/secret.txt, rel.txt ->
    ../outside/secret.txt, outdir -> ../outside/d."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="herald-static-")
        self.root = os.path.join(self.top, "root")
        out = os.path.join(self.top, "outside")
        os.makedirs(os.path.join(self.root, "sub"))
        os.makedirs(os.path.join(out, "d"))
        for path, text in (("root/index.html", "home"), ("root/sub/index.html", "sub"),
                           ("outside/secret.txt", "SECRET"), ("outside/d/f.txt", "SECRET-D")):
            with open(os.path.join(self.top, path), "w") as f:
                f.write(text)
        os.symlink("index.html", os.path.join(self.root, "inner.html"))
        os.symlink("sub", os.path.join(self.root, "subl"))
        os.symlink(os.path.join(out, "secret.txt"), os.path.join(self.root, "abs.txt"))
        os.symlink("../outside/secret.txt", os.path.join(self.root, "rel.txt"))
        os.symlink("../outside/d", os.path.join(self.root, "outdir"))

    def cleanup(self):
        shutil.rmtree(self.top, ignore_errors=True)


ESCAPES = ("/abs.txt", "/rel.txt", "/outdir/f.txt", "/outdir/", "/outdir", "//abs.txt", "/sub/../rel.txt")


class TestStaticAndEcho(HeraldTestCase):

    @classmethod
    def make_server(cls):
        cls.static = StaticDir()
        return Herald("--static", cls.static.root, workers=cls.server_workers)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.static.cleanup()

    def test_symlinks_out_of_the_root_refused(self):
        with self.server.http() as c:
            for path in ESCAPES:
                r = c.request("GET", path)
                self.assertIn(r.status, (400, 403, 404), (path, r))
                self.assertNotIn(b"SECRET", r.body, path)

    def test_symlinks_inside_the_root_served(self):
        with self.server.http() as c:
            for path, body in (("/", b"home"), ("/inner.html", b"home"), ("/subl/", b"sub"), ("/sub/", b"sub")):
                r = c.request("GET", path)
                self.assertEqual((r.status, r.body), (200, body), path)

    def test_double_slash_never_redirects_to_another_host(self):
        with self.server.http() as c:
            for path, want in (("//sub", "/sub/"), ("///sub", "/sub/"), ("/sub", "/sub/"), ("//subl", "/subl/"),
                               ("//%2Fsub", "/%2Fsub/")):
                for method in ("GET", "HEAD"):
                    r = c.request(method, path)
                    loc = r.header("Location")
                    if r.status in (301, 302, 307, 308):
                        self.assertFalse(loc.startswith("//"), (path, loc))
                        self.assertEqual(loc, want, path)
                    else:
                        self.assertIn(r.status, (400, 404), (path, r))
            r = c.request("GET", "//sub")
            self.assertEqual(r.status, 301, r)

    def test_echo_is_never_a_page(self):
        with self.server.http() as c:
            r = c.request("POST", "/http/echo", {"Content-Type": "text/html"}, b"<script>alert(1)</script>")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"<script>alert(1)</script>")
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")

    def test_follow_symlinks_when_configured(self):
        with Herald("--static", self.static.root, "--server.static-follow-symlinks", "true", workers=1) as srv:
            with srv.http() as c:
                self.assertEqual(c.request("GET", "/abs.txt").body, b"SECRET")
                self.assertEqual(c.request("GET", "/outdir/f.txt").body, b"SECRET-D")


if __name__ == "__main__":
    main()
