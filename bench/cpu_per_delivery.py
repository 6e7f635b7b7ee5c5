#!/usr/bin/env python3
"""cpu_per_delivery.py - server CPU per delivery, split user / sys, and the
shape of its writes (writev calls and iovecs per call), for Herald (one
worker) and the ceiling (bench/ceiling.c) under the same `herald bench` load
(issue 19, goal 1; docs/benchmarks.md "CPU per delivery at saturation").

    bench/cpu_per_delivery.py [--runs N] [--servers herald,ceiling]
                              [--baseline BIN] [--perf-writev] [-- bench flags]

Each run starts a fresh server on a free loopback port, reads its
/proc/PID/stat utime + stime before and after `herald bench` (default:
1,000 subscribers, 10,000 publications/s offered, 64 B, 1 s warm-up + 6 s),
and divides by every message the subscribers received (warm-up included, as
the CPU is). --baseline BIN adds a server "baseline": that herald binary (an
older build) under the same load. Servers alternate run by run so that the shared machine's load
falls on both alike. CPU seconds per delivery depends far less on other load
than the delivered rate does, but still report the spread.

--perf-writev also counts the server's writev calls with
`perf stat -e syscalls:sys_enter_writev` and, in a separate pass per server,
records every writev's iovec count (`perf record -e
syscalls:sys_enter_writev`, the `vlen` field): those passes cost the server
time of their own, so their CPU is not reported.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERALD = os.environ.get("HERALD_BIN", os.path.join(ROOT, "build", "herald"))
CEILING = os.environ.get("CEILING_BIN", os.path.join(os.path.dirname(HERALD), "herald-ceiling"))
TICK = os.sysconf("SC_CLK_TCK")
DEFAULT_LOAD = ["--subscribers", "1000", "--publish-rate", "10000", "--payload-bytes", "64",
                "--warmup", "1", "--duration", "6"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu(pid):
    """(user, sys) seconds of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


BASELINE = None


def start(server, port):
    if server in ("herald", "baseline"):
        cmd = [BASELINE if server == "baseline" else HERALD, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "1", "--api-key", "k",
               "--log-level", "warn"]
    else:
        cmd = [CEILING, "--port", str(port)]
    return wait_listening(subprocess.Popen(cmd, stdout=subprocess.DEVNULL), port, server)


def wait_listening(p, port, what, tries=100):
    """p once something accepts on port (tries x 50 ms), else p killed and exit."""
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit(f"{what} did not start on port {port}")


def bench(server, port, pid, extra):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        kind = "herald" if server == "baseline" else server
        subprocess.run([HERALD, "bench", "--server", kind, "--port", str(port), "--api-key", "k",
                        "--server-pid", str(pid), "--quiet", "--json", out.name] + DEFAULT_LOAD + extra,
                       check=True)
        return json.load(open(out.name))


def perf_tool(args, pid):
    return subprocess.Popen(["perf"] + args + ["-p", str(pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def stop(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def one_run(server, extra, mode):
    """mode: 'cpu' (plain), 'count' (perf stat on writev) or 'vlen' (perf record)."""
    port = free_port()
    srv = start(server, port)
    perf = None
    data = None
    try:
        if mode == "count":
            perf = perf_tool(["stat", "-x,", "-e", "syscalls:sys_enter_writev"], srv.pid)
        elif mode == "vlen":
            data = tempfile.mktemp(suffix=".perf")
            perf = perf_tool(["record", "-q", "-e", "syscalls:sys_enter_writev", "-o", data], srv.pid)
        time.sleep(0.3)
        u0, s0 = cpu(srv.pid)
        rep = bench(server, port, srv.pid, extra)
        u1, s1 = cpu(srv.pid)
    finally:
        if perf:
            stop(perf)
        stop(srv)
    m = rep["messages"]
    n = m["received_total"]
    row = {"server": server, "received": n, "per_second": m["per_second"], "lost": m["lost"],
           "reordered": m["reordered"], "p50": rep["latency_ms"]["p50"], "p99": rep["latency_ms"]["p99"],
           "user_ns": (u1 - u0) / n * 1e9, "sys_ns": (s1 - s0) / n * 1e9}
    if mode == "count":
        err = perf.stderr.read()
        calls = int(re.search(r"^(\d+),", err, re.M).group(1))
        row["writev"] = calls
        row["deliveries_per_writev"] = n / calls
    if mode == "vlen":
        row.update(vlen_stats(data))
        os.unlink(data)
    return row


def vlen_stats(data):
    out = subprocess.run(["perf", "script", "-i", data, "-F", "trace"], capture_output=True, text=True).stdout
    vlens = [int(v, 16) for v in re.findall(r"vlen: (0x[0-9a-f]+)", out)]
    if not vlens:
        return {"writev_recorded": 0}
    return {"writev_recorded": len(vlens), "iovecs_per_writev": sum(vlens) / len(vlens),
            "max_iovecs": max(vlens)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--servers", default="herald,ceiling")
    ap.add_argument("--baseline", help="another herald binary, run as server 'baseline'")
    ap.add_argument("--perf-writev", action="store_true")
    ap.add_argument("extra", nargs="*", help="more herald bench flags (after --)")
    a = ap.parse_args()
    global BASELINE
    BASELINE = a.baseline
    servers = a.servers.split(",") + (["baseline"] if a.baseline else [])
    rows = []
    for i in range(a.runs):
        for s in servers:
            rows.append(one_run(s, a.extra, "count" if a.perf_writev else "cpu"))
            print(json.dumps(rows[-1]), flush=True)
    if a.perf_writev:
        for s in servers:
            print(json.dumps(one_run(s, a.extra, "vlen")), flush=True)
    for s in servers:
        mine = [r for r in rows if r["server"] == s]
        tot = sorted(r["user_ns"] + r["sys_ns"] for r in mine)
        print(f"{s}: CPU ns/delivery {min(tot):.0f}-{max(tot):.0f} (median {tot[len(tot) // 2]:.0f}); "
              f"user {min(r['user_ns'] for r in mine):.0f}-{max(r['user_ns'] for r in mine):.0f}, "
              f"sys {min(r['sys_ns'] for r in mine):.0f}-{max(r['sys_ns'] for r in mine):.0f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
