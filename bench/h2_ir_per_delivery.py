#!/usr/bin/env python3
"""h2_ir_per_delivery.py - the server's user-space instructions per delivery
to an SSE subscriber over HTTP/2 (h2c), counted by valgrind (callgrind);
docs/benchmarks.md "HTTP/2".

    bench/h2_ir_per_delivery.py [--bin BIN ...] [--conns 2] [--streams 50]
                                [--short 100] [--long 400] [--payload 64]

One herald worker under callgrind; CONNS h2c connections of STREAMS SSE
streams each on one channel (raw frames, h2_raw.py; windows opened to 1 GiB
so flow control never waits), then N publications of PAYLOAD bytes through
one keep-alive API connection, back to back, and every stream reads all N.
Each binary runs with N = SHORT and N = LONG; the figure is (Ir(LONG) -
Ir(SHORT)) / ((LONG - SHORT) x CONNS x STREAMS), so start-up, connection
set-up and exit cancel out (a publication's own API request is shared by its
CONNS x STREAMS deliveries). Instruction counts do not depend on what else
the machine runs.
"""
import argparse
import json
import os
import signal
import socket
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import h2_raw  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "bench"))
import cpu_per_delivery as cpd  # noqa: E402
import ir_per_delivery as ipd  # noqa: E402


def start(binary, port, out):
    return ipd.callgrind([binary, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "1", "--api-key", "k",
                          "--log-level", "warn"], port, out, binary)


def subscribe(port, conns, streams):
    """conns connections of streams SSE streams each: [(H2, {sid: events seen})]."""
    out = []
    for _ in range(conns):
        h2 = h2_raw.H2(port, settings={h2_raw.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 30}, timeout=60)
        h2.window_update(0, 1 << 30)
        seen = {h2.request("/sse?channel=h2-ir"): 0 for _ in range(streams)}
        out.append((h2, seen))
    for h2, seen in out:  # every stream answered (its connected event)
        started = set()
        while len(started) < len(seen):
            f = h2.read_frame(60)
            if f and f[0] == h2_raw.DATA and f[2] in seen:
                started.add(f[2])
    return out


def read_all(subs, n):
    """Until every stream has n more events (counted by their data lines, across DATA frames)."""
    for h2, seen in subs:
        tail = {sid: b"" for sid in seen}
        while min(seen.values()) < n:
            f = h2.read_frame(120)
            if f is None:
                raise SystemExit(f"deliveries stopped at {sorted(seen.values())[:3]} of {n}")
            if f[0] == h2_raw.DATA and f[2] in seen:
                buf = tail[f[2]] + f[3]
                seen[f[2]] += buf.count(b"\ndata: ")
                tail[f[2]] = buf[-6:]


def publish(port, n, payload):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")
    body = json.dumps({"channel": "h2-ir", "data": {"p": "x" * payload}}).encode()
    req = (b"POST /api/publish HTTP/1.1\r\nHost: b\r\nAuthorization: apikey k\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    for _ in range(n):
        s.sendall(req)
        length = 0
        while True:
            line = f.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            if line in (b"\r\n", b""):
                break
        f.read(length)
    s.close()


def one(binary, n, a):
    port = cpd.free_port()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        p = start(binary, port, out)
        try:
            subs = subscribe(port, a.conns, a.streams)
            publish(port, n, a.payload)
            read_all(subs, n)
            for h2, _ in subs:
                h2.close()
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        return ipd.instructions(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", help="herald binaries (default build/herald)")
    ap.add_argument("--conns", type=int, default=2)
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--short", type=int, default=100)
    ap.add_argument("--long", type=int, default=400)
    ap.add_argument("--payload", type=int, default=64)
    a = ap.parse_args()
    for b in a.bin or [os.path.join(ROOT, "build", "herald")]:
        ir0 = one(b, a.short, a)
        ir1 = one(b, a.long, a)
        per = (ir1 - ir0) / ((a.long - a.short) * a.conns * a.streams)
        print(f"{b}: {per:.1f} instructions per h2 SSE delivery ({ir0} Ir with {a.short} publications, "
              f"{ir1} with {a.long}; {a.conns} connections x {a.streams} streams)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
