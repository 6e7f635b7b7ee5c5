#!/usr/bin/env bash
# Issue #19 goals 4 and 5 in one command: the connection ramp (Herald with one
# worker against the ceiling, 10k connections as fast as they come, then a
# ramp to the open-file limit) and SSE fan-out (Herald SSE, nchan SSE, Herald
# WebSocket; same subscribers, channels and rate), each run ROUNDS (2) times,
# (Herald TLS too: 5k connections, --tls, a self-signed P-256 certificate)
# interleaved, through bench/run-scenario.sh. The table it prints is what
# docs/benchmarks.md ("Connection ramp", "SSE fan-out") quotes.
#
#   bench/ramp-sse.sh [ramp] [sse]        both by default
#
# Environment: HERALD_BIN (build/herald), ROUNDS (2), OUT (results directory,
# default bench/results/ramp-sse), RAMP_BIG (connections of the big ramp:
# the open-file limit less 200), SSE_DURATION (8 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export HERALD_WORKERS=1 BENCH_QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-$here/results/ramp-sse}
SSE_DURATION=${SSE_DURATION:-8}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# a self-signed ECDSA P-256 certificate for the TLS ramp (as test_tls.py makes them)
[ -s "$OUT/cert.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
RAMP_BIG=${RAMP_BIG:-$(( $(ulimit -n) * 15 / 16 - 50 ))}
what=${*:-ramp sse}

one() {  # NAME SCENARIO SERVER FLAGS...: one run, its JSON as $OUT/NAME-rROUND.json, the load average noted
  local name=$1 sc=$2 srv=$3; shift 3
  BENCH_RESULTS="$OUT/tmp" "$here/run-scenario.sh" "$sc" "$srv" --quiet "$@" >/dev/null 2>&1 || true
  local j="$OUT/tmp/$sc-$srv.json"
  if [ -s "$j" ]; then
    /usr/bin/python3 - "$j" "$OUT/$name-r$r.json" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); j["loadavg_1min"] = float(sys.argv[3])
json.dump(j, open(sys.argv[2], "w"), indent=1)
PY
  fi
}

for r in $(seq 1 "$ROUNDS"); do
  if [[ $what == *ramp* ]]; then
    one ramp-herald idle herald --subscribers 10000 --channels 100 --warmup 0 --duration 1
    one ramp-ceiling idle ceiling --subscribers 10000 --channels 100 --warmup 0 --duration 1
    HERALD_EXTRA="--tls-cert $OUT/cert.pem --tls-key $OUT/key.pem" \
      one ramp-tls-herald idle herald --subscribers 5000 --channels 100 --warmup 0 --duration 1 --tls
    one ramp-big-herald idle herald --subscribers "$RAMP_BIG" --channels 100 --warmup 0 --duration 1
    one ramp-rate-herald idle herald --subscribers 10000 --channels 100 --warmup 0 --duration 1 --connect-rate 2000
    one ramp-big-rate-herald idle herald --subscribers "$RAMP_BIG" --channels 100 --warmup 0 --duration 1 --connect-rate 2000 --source-ips 4
  fi
  if [[ $what == *sse* ]]; then
    for load in "10k 10000 5" "1k 1000 1000"; do
      read -r tag subs rate <<<"$load"
      f=(--subscribers "$subs" --channels 1 --publish-rate "$rate" --warmup 2 --duration "$SSE_DURATION")
      one "sse$tag-herald-sse" sse-fanout herald "${f[@]}"
      one "sse$tag-nchan-sse" sse-fanout nchan "${f[@]}"
      one "sse$tag-herald-ws" sse-fanout herald "${f[@]}" --transport ws
    done
  fi
done
rm -rf "$OUT/tmp"

/usr/bin/python3 - "$OUT" <<'PY'
import glob, json, os, sys
rows = []
for p in sorted(glob.glob(os.path.join(sys.argv[1], "*-r*.json"))):
    j = json.load(open(p)); c = j["connections"]; m = j["messages"]; sp = j["server_process"]
    hs, lat = c["handshake_ms"], j["latency_ms"]
    measured = (j.get("seconds") or {}).get("measured") or 0
    cpu_del = (sp["cpu_percent"] / 100 * measured / (m["per_second"] * measured) * 1e6
               if sp.get("cpu_percent") and m["per_second"] else None)
    f = lambda v, fmt: "-" if v is None else fmt.format(v)
    rows.append([os.path.basename(p)[:-5], f"{c['opened']}/{c['target']}", f(c["per_second"], "{:.0f}"),
                 f(hs.get("p50"), "{:.2f}"), f(hs.get("p99"), "{:.2f}"), f(hs.get("p99_9"), "{:.2f}"),
                 f(sp.get("ramp_cpu_us_per_connection"), "{:.1f}"),
                 f(m["per_second"], "{:.0f}"), f(cpu_del, "{:.2f}"), f(lat.get("p50"), "{:.2f}"), f(lat.get("p99"), "{:.2f}"),
                 f"{m['lost']}", f(sp.get("bytes_per_connection"), "{:.0f}"), f(j.get("loadavg_1min"), "{:.1f}")])
hdr = ["run", "conns", "conn/s", "hs p50", "hs p99", "hs p99.9", "ramp µs CPU/conn", "deliv/s",
       "µs CPU/deliv", "lat p50", "lat p99", "lost", "B/conn", "load"]
print("| " + " | ".join(hdr) + " |"); print("|" + "---|" * len(hdr))
for r in rows: print("| " + " | ".join(r) + " |")
PY
