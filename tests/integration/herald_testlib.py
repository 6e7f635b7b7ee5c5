"""herald_testlib - shared helpers for Herald's Python integration tests.

Standard library only (plus Debian's python3-websockets in the tests that use
it). Everything here talks to a REAL `herald` binary over loopback:

  Herald          context manager: start `herald serve` with flags / env,
                  parse the port from the "listening on http://HOST:PORT" log
                  line, keep stderr in a file, SIGTERM + wait on exit (SIGKILL
                  after 10 s).
  HttpConn        raw HTTP/1.1 client on a socket: send arbitrary bytes, read
                  one response (status, headers, body; Content-Length, chunked,
                  read-until-close), detect that the server closed.
  RawWS           minimal WebSocket client over a raw socket: handshake, build
                  frames with any fin / rsv / opcode / mask / payload (also the
                  invalid ones a real client library refuses to send), read
                  frames and messages (inflating permessage-deflate), expect a
                  close code.
  PeakSampler     peak RSS / open fds of the server while an attack runs.
  Prober          a well-behaved client's /health round trips (p99, failures)
                  while another client attacks.
  HeraldTestCase  unittest.TestCase base: prints the server's stderr tail when
                  a test fails and fails a test when the server has died.

Environment: HERALD_BIN (default <repo>/build/herald), HERALD_SOURCE_DIR,
HERALD_SANITIZE (ON when built with ASan/UBSan: timing and memory limits are
relaxed).
"""

import base64
import hashlib
import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("HERALD_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
HERALD_BIN = os.environ.get("HERALD_BIN") or os.path.join(REPO, "build", "herald")
SANITIZE = os.environ.get("HERALD_SANITIZE", "OFF").strip().upper() in ("ON", "1", "TRUE", "YES")

# Sanitizer builds are several times slower: stretch timing margins.
SLOW = 3.0 if SANITIZE else 1.0

HOST = "127.0.0.1"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

LISTEN_RE = re.compile(r"listening on https?://([0-9.]+|\[[0-9a-fA-F:]+\]):(\d+)")


def raise_nofile_limit():
    """Raise RLIMIT_NOFILE soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------


class HeraldStartError(AssertionError):
    pass


class Herald:
    """Start `herald serve` on 127.0.0.1:0 and find its port.

        with Herald("--websocket.max-message-size", "1MiB") as srv:
            conn = srv.http()
            ...

    args: extra command line arguments (after `serve --listen ... --workers N`).
    env: extra environment variables (merged into os.environ unless
         clean_env=True, in which case HERALD_* variables of the caller are
         dropped first so the test controls them all).
    """

    def __init__(self, *args, env=None, workers=2, listen="127.0.0.1:0", command="serve",
                 start_timeout=10.0, clean_env=True, add_listen=True, add_workers=True):
        self.args = [str(a) for a in args]
        self.extra_env = dict(env or {})
        self.workers = workers
        self.listen = listen
        self.command = command
        self.start_timeout = start_timeout * SLOW
        self.clean_env = clean_env
        self.add_listen = add_listen
        self.add_workers = add_workers
        self.proc = None
        self.port = None
        self.host = HOST
        self.returncode = None
        self._log = tempfile.NamedTemporaryFile(prefix="herald-stderr-", suffix=".log", delete=False)
        self.log_path = self._log.name
        self._lines = []
        self._lock = threading.Lock()
        self._found = threading.Event()
        self._reader = None

    # -- lifecycle ---------------------------------------------------------

    def argv(self):
        argv = [HERALD_BIN]
        if self.command:
            argv.append(self.command)
        if self.add_listen and self.listen is not None:
            argv += ["--listen", self.listen]
        if self.add_workers and self.workers is not None:
            argv += ["--workers", str(self.workers)]
        return argv + self.args

    def environ(self):
        env = dict(os.environ)
        if self.clean_env:
            for k in list(env):
                if k.startswith("HERALD_") and k not in ("HERALD_BIN", "HERALD_SOURCE_DIR", "HERALD_SANITIZE"):
                    del env[k]
        # Sanitizer builds: make leaks / UB fatal and visible in the log.
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.update({k: str(v) for k, v in self.extra_env.items()})
        return env

    def start(self):
        if not os.path.exists(HERALD_BIN):
            raise HeraldStartError(f"herald binary not found at {HERALD_BIN} (set HERALD_BIN)")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.environ())
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._found.wait(0.05):
                return self
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise HeraldStartError(
                    f"herald exited with {self.proc.returncode} before listening\n"
                    f"argv: {self.argv()}\n--- output ---\n{self.output()}")
        self.kill()
        raise HeraldStartError(f"herald did not log 'listening on' within {self.start_timeout:.0f}s\n"
                               f"argv: {self.argv()}\n--- output ---\n{self.output()}")

    def _read_output(self):
        f = self.proc.stdout
        for raw in iter(f.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._lock:
                self._lines.append(line)
                if len(self._lines) > 20000:
                    del self._lines[:10000]
            try:
                self._log.write(raw)
                self._log.flush()
            except ValueError:
                pass
            if not self._found.is_set():
                m = LISTEN_RE.search(line)
                if m:
                    self.host = m.group(1).strip("[]")
                    self.port = int(m.group(2))
                    self._found.set()

    def output(self, tail=None):
        """Server stdout+stderr so far (last `tail` lines if given)."""
        with self._lock:
            lines = list(self._lines)
        if tail:
            lines = lines[-tail:]
        return "".join(lines)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; return the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
            if self._reader:
                self._reader.join(2)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc:
            self.returncode = self.proc.returncode
        if self._reader:
            self._reader.join(2)
        self._close_files()

    def _close_files(self):
        for f in (self._log, self.proc.stdout if self.proc else None):
            try:
                if f is not None:
                    f.close()
            except Exception:
                pass

    def stop(self, sig=None, timeout=10.0):
        """SIGTERM (or sig), wait up to timeout (then SIGKILL). Returns the exit code
        (negative = killed by signal, as subprocess reports it)."""
        if sig is None:
            sig = signal.SIGTERM
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout * SLOW) is None:
                sys.stderr.write(f"herald did not exit within {timeout * SLOW:.0f}s after {sig!r}; SIGKILL\n")
                self.kill()
        self.returncode = self.proc.returncode
        if self._reader:
            self._reader.join(2)
        self._close_files()
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is not None:
            dump_output(self, f"server output (exit code {rc}) after {exc_type.__name__}")
        return False

    # -- conveniences ----------------------------------------------------------

    @property
    def addr(self):
        return (self.host, self.port)

    def rss_bytes(self):
        return proc_rss_bytes(self.proc.pid)

    def connect(self, timeout=5.0):
        return socket.create_connection(self.addr, timeout=timeout * SLOW)

    def http(self, timeout=5.0):
        return HttpConn(self.addr, timeout=timeout)

    def ws(self, path="/ws/echo", **kw):
        return RawWS.connect(self.addr, path, **kw)

    def url(self, path="/"):
        return f"http://{self.host}:{self.port}{path}"

    def ws_url(self, path="/ws/echo"):
        return f"ws://{self.host}:{self.port}{path}"


def dump_output(server, title, tail=60):
    if server is None:
        return
    sys.stderr.write(f"\n----- {title} (last {tail} lines, full log: {server.log_path}) -----\n")
    sys.stderr.write(server.output(tail))
    sys.stderr.write("----- end of server output -----\n")
    sys.stderr.flush()


def proc_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                parts = line.split()
                return int(parts[1]) * 1024
    raise RuntimeError("VmRSS not found")


def proc_fd_count(pid):
    """Open file descriptors of a process (entries of /proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class _Background:
    """A loop in a daemon thread for the length of a `with` block: the
    subclass's `_step()` runs every `interval` s until the block ends,
    then `_done()` once in the thread."""

    def __init__(self, interval):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = None

    def _step(self):
        raise NotImplementedError

    def _done(self):
        pass

    def _run(self):
        while not self._stop.is_set():
            self._step()
            self._stop.wait(self.interval)
        self._done()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._thread.join()


class PeakSampler(_Background):
    """Samples a process's RSS and open fds every `interval` s in a thread;
    `peak_rss` / `peak_fds` are the maxima seen. Use as a context manager
    around an attack:

        with PeakSampler(srv.proc.pid) as peak:
            attack()
        assert peak.peak_rss - base < LIMIT
    """

    def __init__(self, pid, interval=0.05):
        super().__init__(interval)
        self.pid = pid
        self.peak_rss = 0
        self.peak_fds = 0

    def sample(self):
        try:
            self.peak_rss = max(self.peak_rss, proc_rss_bytes(self.pid))
            self.peak_fds = max(self.peak_fds, proc_fd_count(self.pid))
        except (OSError, RuntimeError):
            pass

    _step = sample

    def __enter__(self):
        self.sample()
        return super().__enter__()

    def __exit__(self, *a):
        super().__exit__(*a)
        self.sample()


# The prober's process (Prober): one keep-alive HTTP/1.1 connection, a GET
# every `interval` s, each round trip recorded with the CPU queue wait in it
# (queued(): the most any of the server's threads waited for a CPU during the
# round trip, plus the prober's own wait; 0 without /proc schedstat); says
# "ready" after the first, stops when its stdin closes and prints
# {"rtts": [...], "waits": [...], "failures": n}.
_PROBER_CODE = r"""
import json, os, select, socket, sys, time
host, port, path, interval, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
pid = int(sys.argv[6])
req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode()
rtts, waits, failures, sock, buf = [], [], 0, None, b""
def run_queue_ns(f):
    try:
        with open(f) as fh: return int(fh.read().split()[1])
    except (OSError, IndexError, ValueError): return None
def queued():
    q = {"self": run_queue_ns("/proc/self/schedstat")}
    if pid:
        try: tids = os.listdir("/proc/%d/task" % pid)
        except OSError: tids = []
        for t in tids: q[t] = run_queue_ns("/proc/%d/task/%s/schedstat" % (pid, t))
    return q
def waited(q0, q1):
    d = {k: q1[k] - q0[k] for k in q1 if q1[k] is not None and q0.get(k) is not None}
    return (d.pop("self", 0) + max(d.values(), default=0)) / 1e9
def answer():
    global buf
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d: raise OSError("closed")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    n = 0
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length": n = int(v)
    while len(rest) < n:
        d = sock.recv(65536)
        if not d: raise OSError("closed")
        rest += d
    buf = rest[n:]
    return status
while True:
    try:
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            buf = b""
        q0 = queued()
        t0 = time.monotonic()
        sock.sendall(req)
        status = answer()
        rtts.append(time.monotonic() - t0)
        waits.append(min(rtts[-1], waited(q0, queued())))
        if status != 200: failures += 1
    except (OSError, ValueError, IndexError):
        failures += 1
        if sock is not None: sock.close()
        sock = None
    if len(rtts) + failures == 1:
        print("ready", flush=True)
    if select.select([sys.stdin], [], [], interval)[0]:
        break
print(json.dumps({"rtts": rtts, "waits": waits, "failures": failures}))
"""


class Prober:
    """A well-behaved client that keeps being served while another client
    attacks: in a process of its own (so the test's threads and their GIL
    are not in its round trips), one keep-alive connection sends `GET
    /health` and reads the answer, `interval` s apart, recording each round
    trip. After the `with` block, `rtts` holds them, `p99()` is the 99th
    percentile in seconds and `failures` the requests that got no `200` (a
    closed connection is reopened and counted as a failure). With
    `--workers 1` the prober shares the attacker's worker.

    Given the server's `pid`, each round trip also records the time spent
    waiting for a CPU (/proc/PID/task/*/schedstat: the most any server
    thread waited, plus the prober's own wait) in `waits`, and
    `p99_less_wait()` is the p99 of the round trips less those waits: what
    the server's own work took, which other processes on a busy machine do
    not lengthen (a worker held by an attack for its own CPU time still
    counts in full; on a quiet machine the waits are ~0 and it is `p99()`).

        with Prober(srv.addr, pid=srv.proc.pid) as probe:
            attack()
        assert probe.failures == 0 and probe.p99_less_wait() < 0.25 * SLOW, probe.describe()
    """

    def __init__(self, addr, interval=0.02, path="/health", timeout=5.0, pid=None):
        self.addr = addr
        self.interval = interval
        self.path = path
        self.timeout = timeout
        self.pid = pid
        self.rtts = []
        self.waits = []
        self.failures = 0
        self._proc = None

    def __enter__(self):
        host, port = self.addr
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBER_CODE, host, str(port), self.path, str(self.interval), str(self.timeout),
             str(self.pid or 0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._proc.stdout.readline()  # its first round trip is done: the block starts probed
        return self

    def __exit__(self, *a):
        out, _ = self._proc.communicate(timeout=self.timeout + 30)  # closes its stdin: it stops
        r = json.loads(out)
        self.rtts = r["rtts"]
        self.waits = r["waits"]
        self.failures = r["failures"]

    @staticmethod
    def _p99(xs):
        if not xs:
            return float("inf")
        r = sorted(xs)
        return r[min(len(r) - 1, int(len(r) * 0.99))]

    def p99(self):
        return self._p99(self.rtts)

    def p99_less_wait(self):
        return self._p99([t - w for t, w in zip(self.rtts, self.waits)])

    def describe(self):
        return (f"/health p99 {self.p99() * 1000:.1f} ms, {self.p99_less_wait() * 1000:.1f} ms less the CPU queue "
                f"waits (most {max(self.waits, default=0) * 1000:.1f} ms), over {len(self.rtts)} round trips, "
                f"{self.failures} failed")


def run_herald(*args, env=None, timeout=20, clean_env=True):
    """Run the binary to completion (for CLI sub-commands); return CompletedProcess."""
    e = dict(os.environ)
    if clean_env:
        for k in list(e):
            if k.startswith("HERALD_") and k not in ("HERALD_BIN", "HERALD_SOURCE_DIR", "HERALD_SANITIZE"):
                del e[k]
    e.update({k: str(v) for k, v in (env or {}).items()})
    return subprocess.run([HERALD_BIN] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=timeout * SLOW)


# --------------------------------------------------------------------------
# unittest integration
# --------------------------------------------------------------------------


class HeraldTestCase(unittest.TestCase):
    """Base class. Subclasses set `server_args` / `server_env` (or override
    make_server) and get one server per class in `cls.server`.

    - a failing test prints the tail of the server's output;
    - a test after which the server process is gone fails (a crash is a bug);
    - tearDownClass stops the server with SIGTERM and requires exit code 0
      (graceful shutdown is part of the contract; under ASan this also catches
      leaks reported at exit).
    """

    server_args = ()
    server_env = None
    server_workers = 2
    require_clean_exit = True
    server = None

    @classmethod
    def make_server(cls):
        return Herald(*cls.server_args, env=cls.server_env, workers=cls.server_workers)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.make_server()
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        srv, cls.server = cls.server, None
        if srv is not None:
            was_alive = srv.alive()
            rc = srv.stop()
            if cls.require_clean_exit and was_alive and rc != 0:
                dump_output(srv, f"server exit code {rc} at the end of {cls.__name__}")
                raise AssertionError(f"herald exited with {rc} (expected 0) after SIGTERM "
                                     f"at the end of {cls.__name__}; log: {srv.log_path}")
        super().tearDownClass()

    def tearDown(self):
        srv = type(self).server
        if srv is not None and srv.proc is not None and not srv.alive():
            rc = srv.proc.returncode
            if not getattr(self, "_expect_server_exit", False):
                self.fail(f"herald died during {self.id()} (exit code {rc}); log: {srv.log_path}\n"
                          + srv.output(40))
        super().tearDown()

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            dump_output(type(self).server, f"server output after failure of {self.id()}", tail=30)
        return out


def main():
    """unittest.main with verbosity 2 and a friendly message when the binary is missing."""
    if not os.path.exists(HERALD_BIN):
        sys.stderr.write(f"herald binary not found at {HERALD_BIN}; build it or set HERALD_BIN\n")
        sys.exit(1)
    unittest.main(verbosity=2)


# --------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------


def fill_buffer(conn, deadline, closed_exc):
    """Read more bytes from conn.sock into conn.buf before the deadline.
    Raises closed_exc on EOF or reset (and sets conn.eof), socket.timeout on timeout."""
    if conn.eof:
        raise closed_exc("connection already closed by peer")
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out waiting for data")
    conn.sock.settimeout(left)
    try:
        chunk = conn.sock.recv(1 << 20)
    except ConnectionResetError as e:
        conn.eof = True
        raise closed_exc(f"connection reset: {e}")
    if not chunk:
        conn.eof = True
        raise closed_exc("connection closed by peer (EOF)")
    conn.buf += chunk


class ConnectionClosed(Exception):
    """The peer closed the connection (EOF or reset) before a full response."""


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value), in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_token(self, name, token):
        """Header `name` (comma list, possibly repeated) contains `token` (case-insensitive)."""
        token = token.lower()
        for v in self.header_all(name):
            for t in v.split(","):
                if t.strip().lower() == token:
                    return True
        return False

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        body = self.body[:200]
        return f"<Response {self.status} {self.reason!r} headers={self.headers!r} body={body!r}>"


class HttpConn:
    """A raw HTTP/1.x connection. Nothing is added to what you send."""

    def __init__(self, addr, timeout=5.0, sock=None):
        self.timeout = timeout * SLOW
        self.sock = sock or socket.create_connection(addr, timeout=self.timeout)
        self.sock.settimeout(self.timeout)
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes into buf. Raises ConnectionClosed on EOF/reset, socket.timeout on timeout."""
        fill_buffer(self, deadline, ConnectionClosed)

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_line(self, deadline, limit=1 << 20):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            if len(self.buf) > limit:
                raise AssertionError("line too long")
            self._fill(deadline)

    def read_head(self, deadline):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            self._fill(deadline)

    def read_response(self, method="GET", timeout=None, skip_interim=True):
        """Read one response. method=HEAD means no body. 1xx responses are
        skipped when skip_interim (returned otherwise)."""
        deadline = time.monotonic() + (timeout * SLOW if timeout else self.timeout)
        while True:
            head = self.read_head(deadline)
            lines = head[:-4].split(b"\r\n")
            m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
            if not m:
                raise AssertionError(f"malformed status line: {lines[0]!r} (head {head!r})")
            version = m.group(1).decode()
            status = int(m.group(2))
            reason = (m.group(3) or b"").decode("latin-1")
            headers = []
            for ln in lines[1:]:
                if b":" not in ln or ln[:1] in (b" ", b"\t"):
                    raise AssertionError(f"malformed header line {ln!r} in {head!r}")
                k, v = ln.split(b":", 1)
                if k != k.strip() or not k:
                    raise AssertionError(f"malformed header name {k!r} in {head!r}")
                headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
            resp = Response(version, status, reason, headers, b"", head)
            if 100 <= status < 200:
                if status == 101 or not skip_interim:
                    return resp
                continue
            if method == "HEAD" or status in (204, 304):
                return resp
            te = resp.header("Transfer-Encoding")
            cl = resp.header_all("Content-Length")
            if te is not None:
                if te.strip().lower() != "chunked":
                    raise AssertionError(f"unexpected response Transfer-Encoding {te!r}")
                resp.body = self._read_chunked(deadline)
            elif cl:
                if len(set(cl)) != 1 or not cl[0].isdigit():
                    raise AssertionError(f"bad response Content-Length {cl!r}")
                resp.body = self.read_exact(int(cl[0]), deadline)
            else:
                # Body delimited by connection close.
                while True:
                    try:
                        self._fill(deadline)
                    except ConnectionClosed:
                        break
                resp.body = bytes(self.buf)
                self.buf.clear()
            return resp

    def _read_chunked(self, deadline):
        body = bytearray()
        while True:
            line = self.read_line(deadline)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.read_line(deadline) != b"":
                    pass
                return bytes(body)
            body += self.read_exact(size, deadline)
            if self.read_exact(2, deadline) != b"\r\n":
                raise AssertionError("chunk not followed by CRLF")

    def request(self, method, path, headers=None, body=b"", version="HTTP/1.1", host=True, timeout=None):
        """Send one well-formed request (Host and Content-Length added) and read the response."""
        self.send(build_request(method, path, headers, body, version, host))
        return self.read_response(method, timeout=timeout)

    def wait_closed(self, timeout=3.0):
        """True when the server closes the connection within timeout (any bytes
        still arriving before EOF are kept in self.buf)."""
        deadline = time.monotonic() + timeout * SLOW
        try:
            while True:
                self._fill(deadline)
        except ConnectionClosed:
            return True
        except (socket.timeout, TimeoutError):
            return False

    def is_open(self, wait=0.2):
        """True when no EOF arrives within `wait` seconds."""
        return not self.wait_closed(wait / SLOW)


def build_request(method, path, headers=None, body=b"", version="HTTP/1.1", host=True):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} {version}"]
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if host and "host" not in names:
        lines.append("Host: 127.0.0.1")
    for k, v in hdrs:
        lines.append(f"{k}: {v}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    elif method in ("POST", "PUT") and not body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_request(addr, method, path, headers=None, body=b"", timeout=5.0):
    """One request on a fresh connection; returns the Response."""
    with HttpConn(addr, timeout=timeout) as c:
        return c.request(method, path, headers, body)


# --------------------------------------------------------------------------
# Raw WebSocket
# --------------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_accept(key):
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()


def mask_bytes(data, key):
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def build_frame(opcode, payload=b"", fin=True, rsv1=False, rsv2=False, rsv3=False, mask=True,
                mask_key=None, length=None):
    """Encode one frame. mask=False sends it unmasked (a protocol error from a
    client). length overrides the encoded payload length (for lying headers)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | (0x10 if rsv3 else 0) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        if mask_key is None:
            mask_key = os.urandom(4)
        return head + mask_key + mask_bytes(payload, mask_key)
    return head + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv1, rsv2, rsv3, opcode, masked, payload):
        self.fin, self.rsv1, self.rsv2, self.rsv3 = fin, rsv1, rsv2, rsv3
        self.opcode, self.masked, self.payload = opcode, masked, payload

    def close_code(self):
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 64 else self.payload[:64] + b"..."
        return (f"<Frame op={self.opcode:#x} fin={int(self.fin)} rsv={int(self.rsv1)}{int(self.rsv2)}{int(self.rsv3)}"
                f" masked={int(self.masked)} len={len(self.payload)} {p!r}>")


class WSClosed(Exception):
    """TCP closed while waiting for a frame."""


class HandshakeError(AssertionError):
    def __init__(self, msg, response=None):
        super().__init__(msg)
        self.response = response


class RawWS:
    """A WebSocket client speaking raw frames over a socket."""

    def __init__(self, sock, response=None, leftover=b"", timeout=5.0, deflate=False):
        self.sock = sock
        self.response = response
        self.buf = bytearray(leftover)
        self.timeout = timeout * SLOW
        self.deflate = deflate
        self.eof = False

    # -- handshake ---------------------------------------------------------

    @staticmethod
    def handshake_request(path="/ws/echo", key=None, headers=None, host="127.0.0.1", method="GET",
                          version="13", upgrade="websocket", connection="Upgrade"):
        if key is None:
            key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        if upgrade is not None:
            lines.append(f"Upgrade: {upgrade}")
        if connection is not None:
            lines.append(f"Connection: {connection}")
        if key is not False:
            lines.append(f"Sec-WebSocket-Key: {key}")
        if version is not None:
            lines.append(f"Sec-WebSocket-Version: {version}")
        for k, v in (headers.items() if isinstance(headers, dict) else (headers or [])):
            lines.append(f"{k}: {v}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key

    @classmethod
    def connect(cls, addr, path="/ws/echo", headers=None, extensions=None, protocols=None,
                timeout=5.0, key=None, expect_status=101):
        """Open a socket, do the handshake. extensions: the Sec-WebSocket-Extensions
        offer (string) or None; protocols: list of subprotocols offered."""
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if extensions:
            hdrs.append(("Sec-WebSocket-Extensions", extensions))
        if protocols:
            hdrs.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
        req, key = cls.handshake_request(path, key=key, headers=hdrs)
        sock = socket.create_connection(addr, timeout=timeout * SLOW)
        try:
            conn = HttpConn(addr, timeout=timeout, sock=sock)
            conn.send(req)
            resp = conn.read_response("GET")
        except BaseException:
            sock.close()
            raise
        if resp.status != expect_status:
            sock.close()
            raise HandshakeError(f"handshake: expected {expect_status}, got {resp!r}", resp)
        if resp.status != 101:
            sock.close()
            return resp
        if resp.header("Sec-WebSocket-Accept") != ws_accept(key):
            sock.close()
            raise HandshakeError(f"bad Sec-WebSocket-Accept {resp.header('Sec-WebSocket-Accept')!r} "
                                 f"for key {key!r} (want {ws_accept(key)!r})", resp)
        ext = resp.header("Sec-WebSocket-Extensions") or ""
        deflate = "permessage-deflate" in ext.lower()
        return cls(sock, resp, bytes(conn.buf), timeout=timeout, deflate=deflate)

    # -- I/O ---------------------------------------------------------------

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close_socket()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def send_compressed(self, opcode, data, fragments=1):
        """Send one permessage-deflate message (fresh compressor: no context
        takeover), optionally split into `fragments` frames."""
        comp = deflate_bytes(data)
        parts = split_bytes(comp, fragments)
        for i, part in enumerate(parts):
            self.send_frame(opcode if i == 0 else OP_CONT, part, fin=(i == len(parts) - 1), rsv1=(i == 0))

    def _fill(self, deadline):
        fill_buffer(self, deadline, WSClosed)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout * SLOW if timeout is not None else self.timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            self._need(pos + 4, deadline)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        self._need(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if masked:
            payload = mask_bytes(payload, key)
        return Frame(bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10), b0 & 0x0F,
                     masked, payload)

    def recv_message(self, timeout=None, answer_pings=True, pings=None, pongs=None):
        """Read one complete data message; returns (opcode, payload bytes).
        Pings are answered (and their payloads appended to `pings` if a list
        is given); pongs are skipped (payloads appended to `pongs` if given). A close frame raises AssertionError with its code. Validates
        server-side framing rules (unmasked, no reserved bits unless deflate)."""
        deadline = time.monotonic() + (timeout * SLOW if timeout is not None else self.timeout)
        opcode = None
        compressed = False
        parts = []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()) / SLOW)
            if f.masked:
                raise AssertionError(f"server sent a masked frame: {f!r}")
            if f.rsv2 or f.rsv3 or (f.rsv1 and not self.deflate):
                raise AssertionError(f"server set reserved bits: {f!r}")
            if f.opcode == OP_PING:
                if pings is not None:
                    pings.append(f.payload)
                if answer_pings:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                if pongs is not None:
                    pongs.append(f.payload)
                continue
            if f.opcode == OP_CLOSE:
                raise AssertionError(f"unexpected close frame code={f.close_code()} "
                                     f"reason={f.close_reason()!r} while waiting for a message")
            if opcode is None:
                if f.opcode not in (OP_TEXT, OP_BINARY):
                    raise AssertionError(f"server sent {f!r} outside a message")
                opcode = f.opcode
                compressed = f.rsv1
            else:
                if f.opcode != OP_CONT:
                    raise AssertionError(f"server sent {f!r} inside a fragmented message")
                if f.rsv1:
                    raise AssertionError(f"server set RSV1 on a continuation frame: {f!r}")
            parts.append(f.payload)
            if f.fin:
                data = b"".join(parts)
                if compressed:
                    data = inflate_bytes(data)
                if opcode == OP_TEXT:
                    data.decode("utf-8")  # server must send valid UTF-8 (raises otherwise)
                return opcode, data

    def expect_close(self, codes, timeout=None, allow_data=False, reply=True, eof_timeout=3.0):
        """Wait for a close frame; assert its code is in `codes` (int, None for
        'no status code', or a collection). Data frames before it fail the test
        unless allow_data. Then reply with a close (unless reply=False) and
        require the server to close TCP within eof_timeout. Returns the Frame."""
        if isinstance(codes, int) or codes is None:
            codes = (codes,)
        deadline = time.monotonic() + (timeout * SLOW if timeout is not None else self.timeout)
        seen = []
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()) / SLOW)
            except WSClosed as e:
                raise AssertionError(f"TCP closed without a close frame (wanted close {codes}); "
                                     f"frames before: {seen!r}; {e}")
            except (socket.timeout, TimeoutError):
                raise AssertionError(f"no close frame within timeout (wanted close {codes}); "
                                     f"frames before: {seen!r}")
            if f.opcode == OP_CLOSE:
                break
            if f.opcode in (OP_PING, OP_PONG):
                seen.append(f)
                continue
            if not allow_data:
                raise AssertionError(f"expected close {codes}, got data frame {f!r}")
            seen.append(f)
        if f.masked:
            raise AssertionError(f"server close frame is masked: {f!r}")
        if not f.fin or f.rsv1 or f.rsv2 or f.rsv3:
            raise AssertionError(f"bad server close frame bits: {f!r}")
        if len(f.payload) == 1 or len(f.payload) > 125:
            raise AssertionError(f"bad server close payload length {len(f.payload)}")
        try:
            f.close_reason().decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError(f"server close reason is not UTF-8: {f.close_reason()!r}")
        code = f.close_code()
        if code not in codes:
            raise AssertionError(f"expected close code {sorted(codes, key=str)}, got {code} "
                                 f"reason {f.close_reason()!r}")
        if reply:
            try:
                self.send_close(code if code not in (None, 1005, 1006, 1015) else None)
            except OSError:
                pass
        if eof_timeout is not None and not self.wait_eof(eof_timeout):
            raise AssertionError(f"server did not close TCP within {eof_timeout}s after close {code}")
        return f

    def wait_eof(self, timeout=3.0):
        """True when TCP is closed by the peer within timeout (frames after the
        close are ignored)."""
        deadline = time.monotonic() + timeout * SLOW
        try:
            while True:
                self._fill(deadline)
                self.buf.clear()
        except WSClosed:
            return True
        except (socket.timeout, TimeoutError):
            return False

    def echo(self, opcode, payload, timeout=None):
        self.send_frame(opcode, payload)
        return self.recv_message(timeout)

    def ping(self, payload=b"", timeout=None):
        """Send a ping, return the payload of the next pong (data frames fail)."""
        self.send_frame(OP_PING, payload)
        deadline = time.monotonic() + (timeout * SLOW if timeout is not None else self.timeout)
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()) / SLOW)
            if f.opcode == OP_PONG:
                return f.payload
            if f.opcode == OP_PING:
                continue
            raise AssertionError(f"waiting for a pong, got {f!r}")


# --------------------------------------------------------------------------
# permessage-deflate helpers (RFC 7692)
# --------------------------------------------------------------------------


def deflate_bytes(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_bytes(data, max_size=None):
    d = zlib.decompressobj(-15)
    out = d.decompress(data + b"\x00\x00\xff\xff")
    return out + d.flush()


def split_bytes(data, n):
    if n <= 1:
        return [data]
    size = max(1, -(-len(data) // n))
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    while len(parts) < n:
        parts.append(b"")
    return parts


def suites_again(loader, modules, skip=()):
    """The tests of `modules` as one suite, minus the test methods named in
    `skip`: for files that re-run whole suites against another server setup
    (test_engine_delayed.py, test_redis_suites.py)."""
    def flatten(suite):
        for t in suite:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t
    suite = unittest.TestSuite()
    for mod in modules:
        for t in flatten(loader.loadTestsFromModule(mod)):
            if getattr(t, "_testMethodName", "") not in skip:
                suite.addTest(t)
    return suite
