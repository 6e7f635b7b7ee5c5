#!/usr/bin/python3
"""bench/report.py - the side-by-side table from `herald bench` JSON reports.

    bench/report.py [--results bench/results] [--images docs/images] [--doc docs/benchmarks.md]

Reads RESULTS/SCENARIO-SERVER.json (written by bench/run-scenario.sh) and
RESULTS/machine.json (written by bench/compare.sh), prints a markdown table of
the key metrics per scenario and server and the Herald / peer ratios. With
--images, draws IMAGES/bench-latency.png (fan-out latency percentiles per
server) and IMAGES/bench-throughput.png (deliveries/s per scenario per server)
with gnuplot (bench/latency.gp, bench/throughput.gp). With --doc, replaces
what lies between <!-- bench:begin --> and <!-- bench:end --> in that file
with the same markdown. Standard library only.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ["idle", "idle-50k", "fanout", "fanout-1k", "many-channels", "chat", "storm", "sse-fanout"]
SERVERS = ["herald", "nchan", "ws-node"]
PEERS = ["nchan", "ws-node"]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
LATENCY_SCENARIO = "fanout"


def load(results):
    runs = {}
    for name in sorted(os.listdir(results)):
        if not name.endswith(".json") or name == "machine.json":
            continue
        try:
            with open(os.path.join(results, name)) as f:
                j = json.load(f)
        except (OSError, ValueError) as e:
            print(f"report: skipping {name}: {e}", file=sys.stderr)
            continue
        if "scenario" in j and "server" in j:
            runs[(j["scenario"], j["server"])] = j
    machine = {}
    try:
        with open(os.path.join(results, "machine.json")) as f:
            machine = json.load(f)
    except (OSError, ValueError):
        pass
    return runs, machine


def get(j, *path):
    for p in path:
        if not isinstance(j, dict) or j.get(p) is None:
            return None
        j = j[p]
    return j


def usable(j):
    return j is not None and "skipped" not in j and j.get("ok")


# ---- metrics -------------------------------------------------------------------------

def metrics(j):
    """The numbers of one run (None where not measured or not meaningful)."""
    p = j.get("params", {})
    m = j.get("messages", {})
    rate = p.get("publish_rate") or 0
    subs = p.get("subscribers") or 0
    chans = p.get("channels") or 1
    measured = get(j, "seconds", "measured") or 0
    delivered = m.get("per_second") if rate > 0 else None
    cpu = get(j, "server_process", "cpu_percent")
    churn = get(j, "connections", "churn") or {}
    out = {
        "conns": get(j, "connections", "opened"),
        "target": get(j, "connections", "target"),
        "offered": rate * subs / chans if rate > 0 else None,
        "published_ps": m.get("publish_per_second") if rate > 0 else None,
        "delivered": delivered,
        "p50": get(j, "latency_ms", "p50"),
        "p95": get(j, "latency_ms", "p95"),
        "p99": get(j, "latency_ms", "p99"),
        "p999": get(j, "latency_ms", "p99_9"),
        "bpc": get(j, "server_process", "bytes_per_connection"),
        "cpu": cpu,
        "cpu_us": (cpu / 100.0 * 1e6 / delivered) if cpu and delivered else None,
        "conns_ps": get(j, "connections", "per_second"),
        "churn_ps": churn.get("per_second") if (churn.get("rate") or 0) > 0 else None,
        "churn_failed": churn.get("failed"),
        "lost": m.get("lost"),
        "dups": m.get("duplicates"),
        "reordered": m.get("reordered"),
        "bench_cpu": get(j, "bench_process", "cpu_percent"),
        "busy": get(j, "run_context", "busy_before_percent"),
        "other": get(j, "run_context", "other_cpu_percent"),
        "measured": measured,
        "procs": get(j, "server_process", "processes"),
    }
    return out


# ---- formatting ----------------------------------------------------------------------------

def f_rate(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def f_ms(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def f_bytes(v):
    if v is None:
        return "–"
    if abs(v) >= 10240:
        return f"{v / 1024:.1f} KiB"
    return f"{v:.0f} B"


def f_num(v, fmt="{:.0f}"):
    return "–" if v is None else fmt.format(v)


def f_ratio(a, b):
    if a is None or b is None or b == 0 or a < 0 or b < 0:
        return "–"
    r = a / b
    if r >= 10:
        return f"{r:.0f}×"
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"{r:.3f}×"


def size_label(j):
    p = j.get("params", {})
    subs, chans = p.get("subscribers", 0), p.get("channels", 1)
    rate = p.get("publish_rate") or 0
    t = "SSE" if p.get("transport") == "sse" else "WS"
    s = f"{subs:,} {t} subs / {chans:,} ch"
    if rate:
        via = "WS publish" if p.get("publish_via") == "ws" else "HTTP publish"
        s += f", {rate:g} pub/s ({via})"
    if (p.get("churn") or 0) > 0:
        s += f", churn {p['churn']:g}/s"
    if (p.get("source_ips") or 1) > 1:
        s += f", {p['source_ips']} source IPs"
    return s


def notes(j, m):
    n = []
    if m["target"] and m["conns"] is not None and m["conns"] < m["target"]:
        n.append(f"{m['conns']:,}/{m['target']:,} connected")
    if m["offered"] and m["delivered"] is not None and m["delivered"] < 0.95 * m["offered"]:
        n.append(f"fell behind: {m['delivered'] / m['offered'] * 100:.0f}% of the offered {f_rate(m['offered'])}/s")
    if m["lost"]:
        n.append(f"{m['lost']:,} not delivered by the end of the drain")
    if m["dups"]:
        n.append(f"{m['dups']:,} duplicates")
    if m["reordered"]:
        n.append(f"{m['reordered']:,} reordered")
    if m["churn_ps"] is not None:
        s = f"churn {m['churn_ps']:.0f} reconnects/s"
        if m["churn_failed"]:
            s += f", {m['churn_failed']:,} failed"
        n.append(s)
    if m["cpu"] is not None and m["procs"] == 1 and j.get("server") != "herald" and m["cpu"] >= 95:
        n.append("server at 100% of its one core")
    if m["bench_cpu"] is not None and m["bench_cpu"] > 90:
        n.append(f"generator busy ({m['bench_cpu']:.0f}% CPU)")
    if m["other"] is not None and m["other"] > 15:
        n.append(f"other processes took {m['other']:.0f}% CPU during the run")
    elif m["busy"] is not None and m["busy"] > 25:
        n.append(f"machine {m['busy']}% busy before the run")
    return "; ".join(n)


def cell_status(j):
    if j is None:
        return "not run"
    if "skipped" in j:
        return j["skipped"]
    errs = j.get("errors") or []
    return "FAILED: " + (errs[0] if errs else "unknown error")


def main_table(runs):
    lines = [
        "| scenario | server | delivered msgs/s | p50 ms | p99 ms | p99.9 ms | bytes / conn | server CPU % | CPU µs / delivery | conns/s | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for sc in scenario_order(runs):
        label = next((size_label(runs[(sc, s)]) for s in SERVERS if usable(runs.get((sc, s)))), "")
        first = True
        for srv in servers_of(runs):
            j = runs.get((sc, srv))
            name = f"**{sc}**<br>{label}" if first else ""
            first = False
            if not usable(j):
                lines.append(f"| {name} | {srv} | {cell_status(j)} | | | | | | | | |")
                continue
            m = metrics(j)
            offered = f" / {f_rate(m['offered'])}" if m["offered"] else ""
            lines.append(
                f"| {name} | {srv} | {f_rate(m['delivered'])}{offered} | {f_ms(m['p50'])} | {f_ms(m['p99'])} | "
                f"{f_ms(m['p999'])} | {f_bytes(m['bpc'])} | {f_num(m['cpu'])} | "
                f"{f_num(m['cpu_us'], '{:.1f}')} | {f_rate(m['conns_ps'])} | {notes(j, m)} |")
    return lines


RATIO_COLS = [  # key, header, better
    ("delivered", "delivered msgs/s", "higher"),
    ("p50", "p50", "lower"),
    ("p99", "p99", "lower"),
    ("bpc", "bytes / conn", "lower"),
    ("cpu", "server CPU %", "lower"),
    ("cpu_us", "CPU / delivery", "lower"),
    ("conns_ps", "conns/s", "higher"),
]


def ratio_table(runs):
    lines = [
        "| scenario | Herald / | " + " | ".join(h for _, h, _ in RATIO_COLS) + " |",
        "|---|---|" + "---:|" * len(RATIO_COLS),
    ]
    for sc in scenario_order(runs):
        h = runs.get((sc, "herald"))
        for peer in [p for p in servers_of(runs) if p != "herald"]:
            pj = runs.get((sc, peer))
            if not usable(h) or not usable(pj):
                why = cell_status(pj if usable(h) else h)
                why = why[5:] if why.startswith("n/a: ") else why
                lines.append(f"| {sc} | {peer} | n/a ({why}) |" + " |" * (len(RATIO_COLS) - 1))
                continue
            hm, pm = metrics(h), metrics(pj)
            cells = []
            for key, _, _ in RATIO_COLS:
                cells.append(f_ratio(hm[key], pm[key]))
            lines.append(f"| {sc} | {peer} | " + " | ".join(cells) + " |")
    return lines


def ratio_lines(runs):
    """One line per scenario and peer, in words (for the summary)."""
    out = []
    for sc in scenario_order(runs):
        h = runs.get((sc, "herald"))
        if not usable(h):
            continue
        hm = metrics(h)
        for peer in [p for p in servers_of(runs) if p != "herald"]:
            pj = runs.get((sc, peer))
            if not usable(pj):
                continue
            pm = metrics(pj)
            parts = []
            if hm["delivered"]:
                parts.append(f"delivered {f_ratio(hm['delivered'], pm['delivered'])}")
            if hm["p99"] is not None and pm["p99"] is not None:
                parts.append(f"p50 {f_ratio(hm['p50'], pm['p50'])}, p99 {f_ratio(hm['p99'], pm['p99'])}")
            if hm["bpc"] is not None and pm["bpc"]:
                parts.append(f"bytes/conn {f_ratio(hm['bpc'], pm['bpc'])}")
            if hm["cpu_us"] is not None and pm["cpu_us"]:
                parts.append(f"CPU/delivery {f_ratio(hm['cpu_us'], pm['cpu_us'])}")
            parts.append(f"conns/s {f_ratio(hm['conns_ps'], pm['conns_ps'])}")
            out.append(f"{sc}, Herald/{peer}: " + "; ".join(parts))
    return out


def scenario_order(runs):
    have = {sc for sc, _ in runs}
    return [s for s in SCENARIOS if s in have] + sorted(have - set(SCENARIOS))


def servers_of(runs):
    have = {srv for _, srv in runs}
    return [s for s in SERVERS if s in have] + sorted(have - set(SERVERS))


def machine_lines(machine):
    if not machine:
        return []
    m = machine
    return [
        f"Measured {m.get('date', '?')} on {m.get('cpus', '?')} cores ({m.get('cpu_model', '?')}), "
        f"{m.get('memory_gib', '?')} GiB, {m.get('os', '?')}, loopback, open-file limit {m.get('nofile', '?')}: "
        f"**the server under test and the generator (`herald bench`, 1 thread) share the 2 cores**. "
        f"Servers: Herald {m.get('herald', '?')} with `--workers {m.get('herald_workers', '?')}`; "
        f"nchan: nginx-light {m.get('nginx', '?')} + libnginx-mod-nchan {m.get('nchan', '?')}, "
        f"`worker_processes {m.get('nchan_workers', '?')}` (as ../shared/peers/nchan.conf.in sets it); "
        f"ws-node: Node {m.get('node', '?')}, ws {m.get('ws', '?')} (one thread).",
    ]


def markdown(runs, machine):
    out = []
    out += machine_lines(machine)
    if out:
        out.append("")
    out += main_table(runs)
    out.append("")
    out.append("Delivered msgs/s: publish-to-receive deliveries counted in the measured window, with the offered "
               "rate (publications/s × subscribers per channel) after the slash. Latency: publish (timestamp in the "
               "payload) to receive, over all deliveries. Bytes / conn: server RSS growth from before the first "
               "connection to all connected, divided by the connections (nchan: master + worker). Server CPU %: "
               "100 = one core. Conns/s: how fast the connections opened during the ramp (1,000 handshakes in "
               "flight).")
    out.append("")
    out.append("Herald / peer ratios (delivered msgs/s and conns/s: higher is better for Herald; latency, "
               "bytes, CPU: lower is better for Herald):")
    out.append("")
    out += ratio_table(runs)
    return "\n".join(out) + "\n"


# ---- charts ------------------------------------------------------------------------------------

def gnuplot(script, *args):
    if not shutil.which("gnuplot"):
        print("report: no gnuplot (apt-get install gnuplot-nox): charts not drawn", file=sys.stderr)
        return False
    r = subprocess.run(["gnuplot", "-c", script, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"report: gnuplot {os.path.basename(script)} failed: {r.stderr.strip()}", file=sys.stderr)
        return False
    return True


def charts(runs, images, tmp):
    os.makedirs(images, exist_ok=True)
    srvs = servers_of(runs)
    # latency percentiles of the fan-out scenario
    lat = os.path.join(tmp, "latency.dat")
    with open(lat, "w") as f:
        f.write("pct " + " ".join(f'"{s}"' for s in srvs) + "\n")
        for key, label in (("p50", "p50"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9")):
            row = []
            for s in srvs:
                j = runs.get((LATENCY_SCENARIO, s))
                v = metrics(j)[key] if usable(j) else None
                row.append("-" if v is None else f"{v:.4f}")
            f.write(f'"{label}" ' + " ".join(row) + "\n")
    ok1 = True
    j0 = next((runs[(LATENCY_SCENARIO, s)] for s in srvs if usable(runs.get((LATENCY_SCENARIO, s)))), None)
    title = f"fanout: {size_label(j0)}" if j0 else "fanout"
    lows = [metrics(runs[(LATENCY_SCENARIO, s)])["p50"] for s in srvs if usable(runs.get((LATENCY_SCENARIO, s)))]
    lows = [v for v in lows if v]
    if j0 and lows:
        ymin = 10 ** math.floor(math.log10(min(lows)) - 0.3)
        ok1 = gnuplot(os.path.join(HERE, "latency.gp"), lat, os.path.join(images, "bench-latency.png"), title,
                      str(ymin))
    else:
        print(f"report: no usable {LATENCY_SCENARIO} result: bench-latency.png not drawn", file=sys.stderr)
    # deliveries/s per scenario
    thr = os.path.join(tmp, "throughput.dat")
    rows, low = 0, None
    with open(thr, "w") as f:
        f.write("scenario " + " ".join(f'"{s}"' for s in srvs) + ' "offered"\n')
        for sc in scenario_order(runs):
            vals, offered = [], None
            for s in srvs:
                j = runs.get((sc, s))
                m = metrics(j) if usable(j) else None
                if m and m["offered"]:
                    offered = m["offered"]
                vals.append("-" if not m or not m["delivered"] else f"{m['delivered']:.1f}")
                if m and m["delivered"]:
                    low = min(low or m["delivered"], m["delivered"])
            if offered is None:
                continue  # idle scenarios deliver nothing
            f.write(f'"{sc}" ' + " ".join(vals) + f" {offered:.1f}\n")
            rows += 1
    if not rows:
        print("report: no scenario with deliveries: bench-throughput.png not drawn", file=sys.stderr)
        return False
    ymin = 10 ** math.floor(math.log10(low) - 0.3)  # a decade below the smallest bar, or so
    ok2 = gnuplot(os.path.join(HERE, "throughput.gp"), thr, os.path.join(images, "bench-throughput.png"), str(ymin))
    return ok1 and ok2


# ---- docs ----------------------------------------------------------------------------------------

def update_doc(path, block):
    with open(path) as f:
        text = f.read()
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        a = text.index(BEGIN) + len(BEGIN)
        b = text.index(END)
        text = text[:a] + "\n" + block + "\n" + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + block + END + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--images", help="draw the PNG charts into this directory")
    ap.add_argument("--doc", help="replace the bench:begin/end block of this markdown file")
    ap.add_argument("--ratios", action="store_true", help="also print one line per scenario and peer")
    a = ap.parse_args()
    runs, machine = load(a.results)
    if not runs:
        print(f"report: no results in {a.results} (run bench/compare.sh)", file=sys.stderr)
        return 1
    md = markdown(runs, machine)
    print(md)
    if a.ratios:
        print("\n".join(ratio_lines(runs)))
    if a.images:
        with tempfile.TemporaryDirectory() as tmp:
            if charts(runs, a.images, tmp):
                print(f"report: charts in {a.images}/bench-latency.png, bench-throughput.png", file=sys.stderr)
    if a.doc:
        update_doc(a.doc, md)
        print(f"report: table written into {a.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
