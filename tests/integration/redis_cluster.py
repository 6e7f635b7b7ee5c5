"""Helpers for multi-node tests: a real redis-server on a free loopback port,
and several real herald processes sharing it (--engine redis).

    with RedisServer() as r, Cluster(3, r) as nodes:
        ...
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

from herald_testlib import SLOW, Herald  # noqa: F401
from herald_native import API_KEY

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def redis_available():
    return os.path.exists(REDIS_BIN)


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, no persistence, killed at exit.
    restart() keeps the port (a Redis that comes back after an outage)."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="herald-redis-")
        self.proc = None
        self.persistent = False  # True: append-only file fsynced at every write (survives restarts)
        self.extra = []          # more redis-server arguments (e.g. ["--requirepass", "pw"])

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always",
             "--dir", self.dir, "--protected-mode", "no", "--loglevel", "warning"] + self.extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            try:
                if self.command("PING") in ("+PONG", "-NOAUTH Authentication required."):
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING")

    def command(self, *args, timeout=2.0):
        """One command, the raw first reply line (enough for PING / DBSIZE / FLUSHALL)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            out = f"*{len(args)}\r\n" + "".join(f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
            s.sendall(out.encode())
            buf = b""
            while not buf.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf.decode(errors="replace").strip()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        self.kill()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def node(redis_addrs, *args, workers=2, node_id=None, env=None):
    """A herald node on the redis engine (not started)."""
    extra = ["--engine", "redis", "--redis", redis_addrs, "--api-key", API_KEY]
    if node_id:
        extra += ["--node-id", node_id]
    return Herald(*extra, *args, workers=workers, env=env)


class Cluster:
    def __init__(self, n, redis, *args, workers=2):
        addrs = redis if isinstance(redis, str) else ",".join(r.addr for r in (redis if isinstance(redis, list) else [redis]))
        self.nodes = [node(addrs, *args, workers=workers, node_id=f"node{i}") for i in range(n)]

    def __enter__(self):
        for n in self.nodes:
            n.start()
        return self.nodes

    def __exit__(self, *a):
        """Stop every node (SIGTERM); returns their exit codes (0 = clean, no leak under ASan)."""
        return [n.stop() if n.alive() else n.proc.returncode for n in self.nodes]
