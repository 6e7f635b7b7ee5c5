#!/usr/bin/env python3
"""bench/redis_receive.py - the receive side of the Redis engine alone, for
docs/benchmarks.md "Redis engine: API publish throughput" (third round):
four /ws/raw subscribers of channel "r" on a node at PORT, then TOTAL
publications PUBLISHed straight into the node's pub/sub channel
(herald:c:r, the wire format "M<offset> <epoch> <ms>\\n<data>") by a Lua
loop in the redis-server at RPORT, PER per EVAL; returns once every
subscriber read them all. Run the node under callgrind
(--separate-threads=yes) and divide each thread's instructions by TOTAL:
no publish path runs in Herald, so the engine thread's count is what
receiving a publication costs it.
Usage: bench/redis_receive.py PORT RPORT [TOTAL=20000] [PER=200]"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from herald_testlib import RawWS  # noqa: E402

LUA = ("for i=1,tonumber(ARGV[2]) do redis.call('PUBLISH', KEYS[1], "
       "'M' .. (ARGV[1]+i) .. ' abcdefgh 0\\n{\"x\":1}') end return 1")


def main():
    port, rport = int(sys.argv[1]), int(sys.argv[2])
    total = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    per = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    subs = [RawWS.connect(("127.0.0.1", port), path="/ws/raw?channel=r") for _ in range(4)]
    time.sleep(1.0)  # the node's SUBSCRIBE reaches Redis
    for sent in range(0, total, per):
        subprocess.run(["redis-cli", "-p", str(rport), "EVAL", LUA, "1", "herald:c:r", str(sent), str(per)],
                       check=True, stdout=subprocess.DEVNULL)
    for ws in subs:
        for _ in range(total):
            ws.recv_message(timeout=60)
    print(f"received {total} x {len(subs)}")


if __name__ == "__main__":
    main()
