#!/usr/bin/env python3
"""The issue-4 target table from bench/targets.sh's results.

usage: bench/targets.py RESULTS_DIR [DOC.md]

Reads RESULTS_DIR/<load>-<payload>-<server>.json (herald bench reports with
run_context), prints a markdown block — every run, then Herald with one
worker as a percentage of the ceiling and as ratios to nchan and ws-node —
and, with DOC.md, replaces what is between <!-- targets:begin --> and
<!-- targets:end --> in it.
"""
import glob
import json
import os
import re
import sys

SERVERS = ["ceiling", "herald-w1", "herald-w2", "nchan", "ws-node"]
LOADS = {"target-1k": "1,000 subs × 3,000 pub/s", "target-10k": "10,000 subs × 300 pub/s",
         "target-max-1k": "most: 1,000 subs × 10,000 pub/s offered", "target-max-10k": "most: 10,000 subs × 1,000 pub/s offered"}
ORDER = list(LOADS)


def fmt_rate(x):
    if x is None:
        return "–"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"


def fmt_ms(x):
    if x is None:
        return "–"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def load_runs(d):
    runs = {}
    for f in glob.glob(os.path.join(d, "*.json")):
        m = re.match(r"(target-(?:max-)?\w+)-(\d+)-(.+)\.json$", os.path.basename(f))
        if not m:
            continue
        with open(f) as fh:
            runs[(m.group(1), int(m.group(2)), m.group(3))] = json.load(fh)
    return runs


def stats(j):
    m, lat, sp = j.get("messages") or {}, j.get("latency_ms") or {}, j.get("server_process") or {}
    d = m.get("per_second") or 0
    cpu = sp.get("cpu_percent")
    offered = (j.get("params") or {}).get("publish_rate", 0) * (j.get("params") or {}).get("subscribers", 0)
    return {
        "ok": j.get("ok") and d > 0,
        "delivered": d,
        "offered": offered,
        "lost": m.get("lost"),
        "p50": lat.get("p50"), "p99": lat.get("p99"), "p999": lat.get("p99_9"),
        "cpu": cpu,
        "us": cpu / 100 * 1e6 / d if cpu is not None and d else None,
        "gen": (j.get("bench_process") or {}).get("cpu_percent"),
        "other": (j.get("run_context") or {}).get("other_cpu_percent"),
        "date": (j.get("run_context") or {}).get("date", "")[:10],
    }


def ratio(a, b, digits=2):
    return f"{a / b:.{digits}f}×" if a and b else "–"


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = load_runs(sys.argv[1])
    if not runs:
        print(f"targets: no results in {sys.argv[1]}", file=sys.stderr)
        return 1
    keys = sorted({(lo, p) for lo, p, _ in runs}, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[1]))
    dates = sorted({stats(j)["date"] for j in runs.values() if stats(j)["date"]})
    out = [f"Measured {', '.join(dates) or '?'} by `bench/targets.sh` (the server and the generator share the 2 cores; "
           "the rows named \"most\" offer far more than any server delivers here, to find each one's maximum).", "",
           "| load | payload | server | delivered msgs/s | % of ceiling | p50 ms | p99 ms | p99.9 ms | server CPU % "
           "| CPU µs / delivery | generator CPU % |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lo, p in keys:
        ceil = runs.get((lo, p, "ceiling"))
        cs = stats(ceil) if ceil else None
        for s in SERVERS:
            j = runs.get((lo, p, s))
            if not j:
                continue
            if j.get("skipped"):
                out.append(f"| {LOADS.get(lo, lo)} | {p} B | {s} | n/a: {j['skipped']} | | | | | | | |")
                continue
            st = stats(j)
            pct = f"{100 * st['delivered'] / cs['delivered']:.0f}%" if cs and cs["delivered"] and s != "ceiling" else ""
            out.append(f"| {LOADS.get(lo, lo)} | {p} B | {s} | {fmt_rate(st['delivered'])} / {fmt_rate(st['offered'])} "
                       f"| {pct} | {fmt_ms(st['p50'])} | {fmt_ms(st['p99'])} | {fmt_ms(st['p999'])} "
                       f"| {st['cpu']:.0f} | {st['us']:.3f} | {st['gen']:.0f} |" if st["ok"] else
                       f"| {LOADS.get(lo, lo)} | {p} B | {s} | failed: {', '.join(e.get('message', '') for e in j.get('errors', []))[:80]} | | | | | | | |")
    out += ["", "Herald with one worker (the issue's \"one Herald worker against one nchan worker\"):", "",
            "| load | payload | delivered: % of ceiling | CPU per delivery: ceiling / Herald | delivered: × nchan "
            "| delivered: × ws-node | p99: Herald / nchan |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for lo, p in keys:
        h = runs.get((lo, p, "herald-w1"))
        if not h:
            continue
        hs = stats(h)
        g = {s: stats(runs[(lo, p, s)]) for s in ("ceiling", "nchan", "ws-node")
             if (lo, p, s) in runs and not runs[(lo, p, s)].get("skipped")}
        c, n, w = g.get("ceiling"), g.get("nchan"), g.get("ws-node")
        pct = f"{100 * hs['delivered'] / c['delivered']:.0f}%" if c and c["delivered"] else "–"
        eff = f"{100 * c['us'] / hs['us']:.0f}%" if c and c["us"] and hs["us"] else "–"
        out.append(f"| {LOADS.get(lo, lo)} | {p} B | {pct} | {eff} "
                   f"| {ratio(hs['delivered'], n and n['delivered'])} | {ratio(hs['delivered'], w and w['delivered'])} "
                   f"| {ratio(hs['p99'], n and n['p99'])} |")
    block = "\n".join(out)
    print(block)
    if len(sys.argv) > 2 and sys.argv[2]:
        doc = sys.argv[2]
        with open(doc) as f:
            text = f.read()
        b, e = "<!-- targets:begin -->", "<!-- targets:end -->"
        if b in text and e in text:
            text = text[:text.index(b) + len(b)] + "\n" + block + "\n" + text[text.index(e):]
            with open(doc, "w") as f:
                f.write(text)
        else:
            print(f"targets: no {b} ... {e} block in {doc}: not written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
