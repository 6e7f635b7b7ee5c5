#!/usr/bin/env python3
"""bench/publish_latency.py - API publish latency and throughput from N
keep-alive connections, each sending POST /api/publish and waiting for the
answer before the next (closed loop), for docs/benchmarks.md "Durable log".

Usage: publish_latency.py HOST:PORT API_KEY [--conns 8] [--seconds 5]
       [--bytes 64] [--channels 8] [--data-dir DIR]
Prints publications/s, p50/p99/max of the answer's latency (µs), and with
--data-dir the log's bytes on disk per publication (size of DIR/*.log
divided by the publications answered; start on an empty DIR).
"""

import argparse
import glob
import json
import os
import socket
import threading
import time


def worker(addr, key, channel, payload, until, out):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = json.dumps({"channel": channel, "data": {"p": payload}}).encode()
    req = (f"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {key}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    lat, buf, errors = [], b"", 0
    while time.monotonic() < until:
        t0 = time.perf_counter()
        s.sendall(req)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].decode("latin-1")
                n = int(head.lower().split("content-length:")[1].split("\r\n")[0])
                if len(buf) >= end + 4 + n:
                    break
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        lat.append(time.perf_counter() - t0)
        if not head.startswith("HTTP/1.1 200"):
            errors += 1
        buf = buf[end + 4 + n:]
    s.close()
    out.append((lat, errors))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("key")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--bytes", type=int, default=64)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--data-dir")
    a = ap.parse_args()
    payload = "x" * max(0, a.bytes - 8)  # {"p":"…"} is the payload's size
    until = time.monotonic() + a.seconds
    out = []
    ts = [threading.Thread(target=worker, args=(a.addr, a.key, f"lat:{i % a.channels}", payload, until, out))
          for i in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat = sorted(x for l, _ in out for x in l)
    errors = sum(e for _, e in out)
    n = len(lat)
    line = (f"{n / a.seconds:8.0f} publications/s  p50 {lat[n // 2] * 1e6:6.0f} µs  "
            f"p99 {lat[min(n - 1, int(n * 0.99))] * 1e6:6.0f} µs  max {lat[-1] * 1e6:6.0f} µs  errors {errors}")
    if a.data_dir:
        time.sleep(0.3)
        disk = sum(os.path.getsize(p) for p in glob.glob(os.path.join(a.data_dir, "*.log")))
        line += f"  {disk / max(1, n - errors):.0f} B on disk per publication"
    print(line)


if __name__ == "__main__":
    main()
