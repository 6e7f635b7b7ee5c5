#!/usr/bin/env python3
"""bench/durable_log.py - write a durable log of about SIZE_MB megabytes in
the record format of src/engine/logrec.h, for the start-up time measurement
of docs/benchmarks.md "Durable log" (publishing 1 GB through the API on the
shared build VM would take minutes).

Usage: durable_log.py DIR SIZE_MB [--payload 4096] [--channels 1000]
       [--history 100] [--segment-mb 64]
Publications go round-robin over the channels (offsets 1, 2, ... each, one
epoch per channel, publish times 1 ms apart ending now), each record with
history_size = --history and no TTL, as herald writes them.
"""

import argparse
import os
import struct
import time
import zlib

MAGIC = 0x314C5248  # "HRL1"
KIND_PUB = 1


def record(channel, epoch, offset, time_ms, history, data):
    body = struct.pack("<BB16sQQIQQIIII", KIND_PUB, 0, epoch, offset, time_ms, history, 0, 0,
                       len(channel), len(data), 0, 0) + channel + data
    return struct.pack("<III", MAGIC, 12 + len(body), zlib.crc32(body)) + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("size_mb", type=float)
    ap.add_argument("--payload", type=int, default=4096)
    ap.add_argument("--channels", type=int, default=1000)
    ap.add_argument("--history", type=int, default=100)
    ap.add_argument("--segment-mb", type=int, default=64)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=False)
    data = b'{"p":"' + b"x" * (a.payload - 8) + b'"}'
    chans = [f"load:{i}".encode() for i in range(a.channels)]
    epochs = [f"{i:016x}".encode() for i in range(a.channels)]
    per = len(record(chans[0], epochs[0], 1, 0, a.history, data))
    total = int(a.size_mb * 1e6) // per
    t0 = int(time.time() * 1000) - total
    seg, out, written, n = 0, None, 0, 0
    offsets = [0] * a.channels
    for n in range(total):
        if out is None or written >= a.segment_mb << 20:
            if out:
                out.close()
            out = open(os.path.join(a.dir, f"{seg:016x}.log"), "wb")
            seg, written = seg + 1, 0
        i = n % a.channels
        offsets[i] += 1
        rec = record(chans[i], epochs[i], offsets[i], t0 + n, a.history, data)
        out.write(rec)
        written += len(rec)
    out.close()
    print(f"{total} records of {per} B in {seg} segments")


if __name__ == "__main__":
    main()
