#!/usr/bin/env python3
"""bench/redis_ceiling.py - what one redis-server does with the Redis
engine's publish script alone, for docs/benchmarks.md "Redis engine: API
publish throughput": redis-benchmark sends EVALSHA of the script (read from
src/engine/redis.c) carrying BATCH publications of 64 bytes to distinct
channels (no subscriber: PUBLISH reaches nobody, so this is Redis's upper
bound for the script), 4 clients, pipelined; prints calls/s and
publications/s per batch size.

Usage: redis_ceiling.py REDIS_PORT [--batches 1,16,64] [--publications 400000]
"""
import argparse
import re
import subprocess
import os

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "engine", "redis.c")


def cli(port, *a):
    return subprocess.run(["redis-cli", "-p", str(port), *a], capture_output=True, text=True, check=True).stdout.strip()


def script():
    m = re.search(r'static const char publish_lua\[\] =\n(.*?);\n', open(SRC).read(), re.S)
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))).encode().decode("unicode_escape")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--publications", type=int, default=400000)
    a = ap.parse_args()
    sha = cli(a.port, "script", "load", script())
    for b in map(int, a.batches.split(",")):
        keys, args = [], []
        for i in range(b):
            ch = f"ceiling-{i}"
            # one run per channel (the script's layout): meta, history keys; the run's 6
            # arguments (pubsub channel, history size, TTL, epoch, idempotency window, count),
            # then the publication's 3 (data, time, has idempotency key)
            keys += [f"herald:m:{{{ch}}}", f"herald:h:{{{ch}}}"]
            args += [f"herald:c:{ch}", "100", "300000", "0123456789abcdef", "1", "1", "x" * 64, "1733300000000", "0"]
        calls = max(a.publications // b, 1000)
        out = subprocess.run(["redis-benchmark", "-p", str(a.port), "-n", str(calls), "-P", str(max(64 // b, 1)),
                              "-c", "4", "-q", "evalsha", sha, str(len(keys)), *keys, *args],
                             capture_output=True, text=True, check=True).stdout
        rate = float(re.findall(r"([\d.]+) requests per second", out)[-1])
        print(f"batch {b:3}: {rate:9.0f} script calls/s = {rate * b:9.0f} publications/s")


if __name__ == "__main__":
    main()
