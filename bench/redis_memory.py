#!/usr/bin/env python3
"""bench/redis_memory.py - Redis-side memory per channel of history with the
Redis engine, for docs/benchmarks.md "Redis engine: API publish throughput".

Usage: redis_memory.py HERALD_HOST:PORT API_KEY REDIS_PORT [--channels 1000]
       [--pubs 100] [--bytes 64] [--prefix herald]
Publishes --pubs publications of --bytes to each of --channels fresh channels
through POST /api/batch (100 publishes a request), then prints Redis's
used_memory delta per channel and MEMORY USAGE of one channel's keys
(P:m:{C} offset/epoch hash, P:h:{C} history list). Start on an empty Redis:
the delta is everything the engine stores for those channels.
"""

import argparse
import http.client
import json
import subprocess
import uuid


def redis(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *map(str, args)], capture_output=True, text=True,
                          check=True).stdout.strip()


def used_memory(port):
    for line in redis(port, "info", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise SystemExit("no used_memory in INFO memory")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("key")
    ap.add_argument("redis_port", type=int)
    ap.add_argument("--channels", type=int, default=1000)
    ap.add_argument("--pubs", type=int, default=100)
    ap.add_argument("--bytes", type=int, default=64)
    ap.add_argument("--prefix", default="herald")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    tag = uuid.uuid4().hex[:8]
    names = [f"mem-{tag}-{i}" for i in range(a.channels)]
    payload = "x" * a.bytes
    before = used_memory(a.redis_port)
    cmds = [{"method": "publish", "params": {"channel": c, "data": payload}} for c in names for _ in range(a.pubs)]
    for i in range(0, len(cmds), 100):
        conn.request("POST", "/api/batch", json.dumps({"commands": cmds[i:i + 100]}),
                     {"Authorization": f"apikey {a.key}", "Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or b'"error"' in body:
            raise SystemExit(f"publish failed: {r.status} {body[:200]!r}")
    after = used_memory(a.redis_port)
    c = names[0]
    m = int(redis(a.redis_port, "memory", "usage", f"{a.prefix}:m:{{{c}}}") or 0)
    h = int(redis(a.redis_port, "memory", "usage", f"{a.prefix}:h:{{{c}}}") or 0)
    kept = int(redis(a.redis_port, "llen", f"{a.prefix}:h:{{{c}}}") or 0)
    print(f"{a.channels} channels x {a.pubs} publications of {a.bytes} B ({kept} kept per channel): "
          f"used_memory +{(after - before) / a.channels:.0f} B per channel; "
          f"MEMORY USAGE of one channel: history list {h} B ({h / max(kept, 1):.0f} B per kept publication), "
          f"offset/epoch hash {m} B")


if __name__ == "__main__":
    main()
