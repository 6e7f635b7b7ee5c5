#!/usr/bin/env python3
"""api_ir_per_publish.py - the worker's user-space instructions per
POST /api/publish, counted by valgrind (callgrind, --separate-threads=yes);
docs/benchmarks.md "API publish: instructions per request".

    bench/api_ir_per_publish.py [--bin BIN ...] [--conns 4] [--channels 64]
                                [--short 1000] [--long 5000] [--payload 64]
                                [--spaced] [--keep DIR]

One herald worker (memory engine, no subscribers) under callgrind; CONNS
keep-alive connections each send one publish, then each reads its answer,
round after round (CONNS requests in flight), until N publishes are
answered, all 200. The body is the one `herald bench` sends: {"channel":
"bench-<i>", "data": {"t":..,"c":..,"s":..,"p":"xx.."}} of PAYLOAD bytes of
data, channels in turn; --spaced writes it as Python's json.dumps does
(", " and ": "), which is not compact, so the server parses it. Each binary runs with N = SHORT and N = LONG; the
figure is the worker thread's (Ir(LONG) - Ir(SHORT)) / (LONG - SHORT), so
start-up, connection set-up and exit cancel out. --keep DIR keeps the LONG
run's callgrind files there (for callgrind_annotate --inclusive=yes).
Instruction counts do not depend on what else the machine runs.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import cpu_per_delivery as cpd  # noqa: E402
import ir_per_delivery as ipd  # noqa: E402


def request(i, a):
    data = '{"t":%d,"c":%d,"s":%d,"p":"' % (1700000000000000 + i, i % 16, i)
    data += "x" * max(0, a.payload - len(data) - 2) + '"}'
    body = ('{"channel":"bench-%d","data":%s}' % (i % a.channels, data)).encode()
    if a.spaced:
        body = body.replace(b",", b", ").replace(b":", b": ")
    return (b"POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: apikey k\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


def read_answer(f):
    status = f.readline()
    length = 0
    while True:
        line = f.readline()
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line in (b"\r\n", b""):
            break
    body = f.read(length)
    if not status.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"publish answered {status!r} {body!r}")


def publish(port, n, a):
    conns = [socket.create_connection(("127.0.0.1", port), timeout=120) for _ in range(a.conns)]
    files = [s.makefile("rb") for s in conns]
    i = 0
    while i < n:
        k = min(a.conns, n - i)
        for j in range(k):
            conns[j].sendall(request(i + j, a))
        for j in range(k):
            read_answer(files[j])
        i += k
    for s in conns:
        s.close()


def worker_ir(d):
    """Instructions of the thread(s) that ran the API (callgrind file per thread)."""
    total = 0
    for name in os.listdir(d):
        text = open(os.path.join(d, name)).read()
        if "hr_api_call" in text:
            total += sum(int(x) for x in re.findall(r"^summary: (\d+)", text, re.M))
    return total


def one(binary, n, a, keep):
    port = cpd.free_port()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        p = ipd.callgrind([binary, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "1", "--api-key", "k",
                           "--log-level", "warn"], port, out, binary, ["--separate-threads=yes"])
        try:
            publish(port, n, a)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        if keep:
            os.makedirs(keep, exist_ok=True)
            for f in os.listdir(d):
                shutil.copy(os.path.join(d, f), keep)
        return worker_ir(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", help="herald binaries (default build/herald)")
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--short", type=int, default=1000)
    ap.add_argument("--long", type=int, default=5000)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--spaced", action="store_true", help="bodies with spaces after , and : (parsed)")
    ap.add_argument("--keep", help="keep the LONG run's callgrind files in this folder")
    a = ap.parse_args()
    for b in a.bin or [os.path.join(ROOT, "build", "herald")]:
        ir0 = one(b, a.short, a, None)
        ir1 = one(b, a.long, a, a.keep)
        per = (ir1 - ir0) / (a.long - a.short)
        print(f"{b}: {per:.0f} worker instructions per API publish ({ir0} Ir with {a.short} publishes, "
              f"{ir1} with {a.long})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
