#!/usr/bin/env python3
"""h2_idle.py - memory per idle HTTP/2 connection with 1 and with 10 open SSE
streams, against HTTP/1.1 SSE connections as the reference.

Starts the real herald (HERALD_BIN, default build/herald) with one worker,
opens N h2c connections (prior knowledge, the raw-frame client of
tests/integration/h2_raw.py) holding S streams each on /sse (every stream
answered: its `connected` event read), and reports the growth of the server's
RSS divided by N (per connection) and by N*S (per stream). The same for N
HTTP/1.1 SSE connections.

Usage: bench/h2_idle.py [N]   (default 500)
"""
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import h2_raw  # noqa: E402
from tls_idle import rss  # noqa: E402  (bench/tls_idle.py: the server's RSS from /proc)

BIN = os.environ.get("HERALD_BIN", os.path.join(HERE, "..", "build", "herald"))


def start():
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--workers", "1",
                          "--http.keepalive-timeout", "10m", "--server.max-connections", "100000"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if "listening on" in line:
            return p, int(line.split("://")[1].split()[0].rsplit(":", 1)[1])
    raise SystemExit("herald did not start")


def h2_conn(port, streams):
    c = h2_raw.H2(port)
    sids = {c.request(f"/sse?channel=idle-{i}") for i in range(streams)}
    seen = set()
    while seen != sids:
        f = c.read_frame(5)
        if f is None:
            raise SystemExit("no answer")
        if f[0] == h2_raw.DATA and b"connected" in f[3]:
            seen.add(f[2])
    return c


def h1_conn(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /sse?channel=idle HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"connected" not in got:
        got += s.recv(4096)
    return s


def measure(n, make):
    p, port = start()
    conns = []
    try:
        for _ in range(20):
            conns.append(make(port))
        time.sleep(0.3)
        base = rss(p.pid)
        for _ in range(n):
            conns.append(make(port))
        time.sleep(0.5)
        return (rss(p.pid) - base) / n
    finally:
        for c in conns:
            c.close()
        p.terminate()
        p.wait()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    h1 = measure(n, h1_conn)
    print(f"HTTP/1.1 SSE connection:           {h1:8.0f} B per connection")
    for s in (1, 10):
        per = measure(n, lambda port: h2_conn(port, s))
        print(f"h2c connection with {s:2d} SSE stream(s): {per:8.0f} B per connection, {per / s:6.0f} B per stream")


if __name__ == "__main__":
    main()
