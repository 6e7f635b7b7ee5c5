#!/usr/bin/env python3
"""ir_per_delivery.py - the server's user-space instructions per delivery,
counted by valgrind (callgrind), for Herald (one worker), the ceiling and
optionally an older Herald, under the `herald bench` load of
bench/cpu_per_delivery.py (issue 19, goal 1; docs/benchmarks.md "CPU per
delivery at saturation"). For machines where `perf stat -e instructions:u`
is not supported (this VM has no hardware counters).

    bench/ir_per_delivery.py [--servers herald,ceiling] [--baseline BIN]
                             [--short S] [--long L] [-- bench flags]

Each server runs twice under callgrind, with `--duration S` and `--duration
L` (default 2 and 6 s); the figure is (Ir(L) - Ir(S)) / (received(L) -
received(S)), so connection set-up, warm-up and exit cancel out. Under
valgrind the server is ~50x slower, so the default load (1,000 subscribers x
10,000/s offered) saturates it: the figure is for a saturated fan-out, like
the CPU figures, not for a given rate. Instruction counts do not depend on
what else the machine runs.

Bench flags after `--` reach every run: `-- --transport sse` measures SSE
subscribers (the ceiling speaks WebSocket only: use --servers herald, with
--baseline for an older build). The deliveries, though, are what the bench
client received, and a starved client (a busy machine) can receive fewer in
the long run than in the short one: such a pair is reported as unreliable
instead of a figure; run it again.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_per_delivery as cpd  # noqa: E402


def callgrind(argv, port, out, what, opts=()):
    """argv under callgrind (its counts to out; more callgrind options in
    opts), once it accepts on port."""
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no", *opts] + argv
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cpd.wait_listening(p, port, f"{what} under valgrind", tries=600)


def instructions(d):
    """The instructions counted by every callgrind output in directory d."""
    text = "".join(open(os.path.join(d, f)).read() for f in os.listdir(d))
    return sum(int(x) for x in re.findall(r"^summary: (\d+)", text, re.M))


def under_callgrind(server, port, out):
    if server in ("herald", "baseline"):
        argv = [cpd.BASELINE if server == "baseline" else cpd.HERALD, "serve", "--listen", f"127.0.0.1:{port}",
                "--workers", "1", "--api-key", "k", "--log-level", "warn"]
    else:
        argv = [cpd.CEILING, "--port", str(port)]
    return callgrind(argv, port, out, server)


def one(server, duration, extra):
    """(instructions, deliveries) of one run."""
    port = cpd.free_port()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        srv = under_callgrind(server, port, out)
        try:
            rep = cpd.bench(server, port, srv.pid, ["--duration", str(duration)] + extra)
        finally:
            cpd.stop(srv)
            srv.wait()
        ir = instructions(d)
    return ir, rep["messages"]["received_total"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default="herald,ceiling")
    ap.add_argument("--baseline", help="another herald binary, run as server 'baseline'")
    ap.add_argument("--short", type=int, default=2)
    ap.add_argument("--long", type=int, default=6)
    ap.add_argument("extra", nargs="*", help="more herald bench flags (after --)")
    a = ap.parse_args()
    cpd.BASELINE = a.baseline
    servers = a.servers.split(",") + (["baseline"] if a.baseline else [])
    for s in servers:
        ir0, n0 = one(s, a.short, a.extra)
        ir1, n1 = one(s, a.long, a.extra)
        counts = f"({ir0} Ir / {n0} deliveries in {a.short} s, {ir1} / {n1} in {a.long} s)"
        if n1 <= n0 or ir1 <= ir0:
            print(f"{s}: unreliable, the long run did not deliver and count more than the short one {counts}",
                  flush=True)
            continue
        print(f"{s}: {(ir1 - ir0) / (n1 - n0):.1f} instructions per delivery {counts}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
