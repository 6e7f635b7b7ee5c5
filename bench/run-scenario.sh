#!/usr/bin/env bash
# One benchmark scenario against one server, in one command:
#
#   bench/run-scenario.sh SCENARIO SERVER [extra herald bench flags]
#   bench/run-scenario.sh --list              the scenarios and their flags
#
# SERVER is herald, nchan, ws-node or ceiling (bench/ceiling.c, $CEILING_BIN
# or herald-ceiling next to $HERALD_BIN). The script starts the server on a free
# loopback port (Herald: $HERALD_BIN or build/herald with --workers
# $HERALD_WORKERS (default 2), an API key and --log-level warn; a peer:
# ../shared/peers/peer start NAME PORT, as the peer script configures it),
# runs `herald bench --server SERVER --port P --server-pid PID --scenario
# SCENARIO --json OUT` with the scenario's flags (extra flags win), stops the
# server (also on error or Ctrl-C) and leaves the JSON report and the human
# summary in bench/results/SCENARIO-SERVER.{json,log}.
#
# A combination the server cannot do (chat on ws-node: no WebSocket
# publishing) writes a JSON stub {"skipped": "why"} and exits 0.
#
# Environment: HERALD_BIN, HERALD_WORKERS (2), HERALD_EXTRA (more `herald serve`
# arguments, split on spaces: e.g. --tls-cert C --tls-key K), PEER (path of the peer script),
# BENCH_RESULTS (output directory), BENCH_QUIET_WAIT (seconds to wait for the
# machine to go quiet before starting, default 30; 0 = do not wait),
# BENCH_SERVER_CPUS / BENCH_GENERATOR_CPUS (taskset CPU lists for Herald or the
# ceiling and for the generator, e.g. 0 and 1: neither takes the other's core;
# unset = the scheduler's choice).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# ---- scenarios -------------------------------------------------------------------
# Sizes fit a 2-core machine that runs the server and the generator together.
# The first flag of each line is the herald bench --scenario preset it starts
# from (src/bench/opts.c); the flags after it override the preset.
SCENARIOS="idle idle-50k fanout fanout-1k many-channels chat storm sse-fanout"

scenario_flags() {  # NAME -> flags (one line)
  case "$1" in
    # memory per idle WebSocket connection: 10k connections over 100 channels, no publications
    idle)          echo "--scenario idle --subscribers 10000 --channels 100 --publish-rate 0 --warmup 0 --duration 10" ;;
    # the same at 50k over 4 source addresses, capped by the open-file limit (see below)
    idle-50k)      echo "--scenario idle-50k --subscribers 50000 --channels 100 --publish-rate 0 --warmup 0 --duration 10 --source-ips 4" ;;
    # 1 channel x 10k WebSocket subscribers, 5 publications/s (50k deliveries/s offered: a rate
    # all three servers sustain here; at 10/s nchan and ws-node run at 100% CPU and queue), 64 B
    fanout)        echo "--scenario fanout --subscribers 10000 --channels 1 --publish-rate 5 --warmup 3 --duration 15" ;;
    # the fanout preset as it is: 1 channel x 1k subscribers x 1,000 publications/s
    # (1M deliveries/s offered: a throughput ceiling, beyond what the peers sustain)
    fanout-1k)     echo "--scenario fanout-1k --subscribers 1000 --channels 1 --publish-rate 1000 --warmup 2 --duration 15" ;;
    # 1k channels x 10 subscribers (10k channels x 10 = 100k connections is more than
    # the 20,000 open files a process may have here), 1,000 publications/s via HTTP
    many-channels) echo "--scenario many-channels --subscribers 10000 --channels 1000 --publish-rate 1000 --warmup 2 --duration 15" ;;
    # 1k rooms x 10 members, 1,000 client publications/s over WebSocket
    chat)          echo "--scenario chat --subscribers 10000 --channels 1000 --publish-rate 1000 --publish-via ws --warmup 2 --duration 15" ;;
    # 5k subscribers on 10 channels, 500 closed and reopened per second, 100 publications/s
    storm)         echo "--scenario storm --subscribers 5000 --channels 10 --publish-rate 100 --churn 500 --source-ips 4 --warmup 2 --duration 15" ;;
    # fanout over Server-Sent Events: 1 channel x 10k subscribers x 5 publications/s
    sse-fanout)    echo "--scenario sse-fanout --transport sse --subscribers 10000 --channels 1 --publish-rate 5 --warmup 3 --duration 15" ;;
    # the issue's target loads (bench/targets.sh): 3M deliveries/s offered, against the ceiling too
    target-1k)     echo "--scenario target-1k --subscribers 1000 --channels 1 --publish-rate 3000 --warmup 2 --duration 8" ;;
    target-10k)    echo "--scenario target-10k --subscribers 10000 --channels 1 --publish-rate 300 --warmup 2 --duration 8" ;;
    # far more than anyone delivers here (10M/s offered): the most each server delivers
    target-max-1k)  echo "--scenario target-max-1k --subscribers 1000 --channels 1 --publish-rate 10000 --warmup 2 --duration 8" ;;
    target-max-10k) echo "--scenario target-max-10k --subscribers 10000 --channels 1 --publish-rate 1000 --warmup 2 --duration 8" ;;
    *) return 1 ;;
  esac
}

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

if [ "${1:-}" = "--list" ]; then
  for s in $SCENARIOS; do printf '%-14s %s\n' "$s" "$(scenario_flags "$s")"; done
  exit 0
fi
[ $# -ge 2 ] || { usage >&2; exit 2; }
scenario=$1; server=$2; shift 2
flags=$(scenario_flags "$scenario") || { echo "run-scenario: unknown scenario '$scenario' (one of: $SCENARIOS)" >&2; exit 2; }
case "$server" in herald|nchan|ws-node|ceiling) ;; *) echo "run-scenario: unknown server '$server' (herald, nchan, ws-node, ceiling)" >&2; exit 2 ;; esac

HERALD_BIN=${HERALD_BIN:-$root/build/herald}
HERALD_WORKERS=${HERALD_WORKERS:-2}
PEER=${PEER:-$root/../shared/peers/peer}
results=${BENCH_RESULTS:-$here/results}
mkdir -p "$results"
out="$results/$scenario-$server.json"
log="$results/$scenario-$server.log"
rm -f "$out" "$log"
[ -x "$HERALD_BIN" ] || { echo "run-scenario: no herald binary at $HERALD_BIN (build it, or set HERALD_BIN)" >&2; exit 2; }
CEILING_BIN=${CEILING_BIN:-$(dirname "$HERALD_BIN")/herald-ceiling}
case "$server" in
  herald) ;;
  ceiling) [ -x "$CEILING_BIN" ] || { echo "run-scenario: no ceiling binary at $CEILING_BIN (set CEILING_BIN)" >&2; exit 2; } ;;
  *) [ -x "$PEER" ] || { echo "run-scenario: no peer script at $PEER (set PEER)" >&2; exit 2; } ;;
esac
own_server() { [ "$server" = herald ] || [ "$server" = ceiling ]; }

skip() {  # REASON: leave a stub the report shows as n/a
  printf '{"scenario": "%s", "server": "%s", "skipped": "%s"}\n' "$scenario" "$server" "$1" > "$out"
  echo "run-scenario: $scenario on $server: skipped: $1" | tee "$log"
  exit 0
}
[ "$scenario" = chat ] && [ "$server" = ws-node ] &&
  skip "n/a: the ws-node peer has no WebSocket publishing (POST /pub only)"
[ "$server" = ceiling ] && [ "$scenario" = sse-fanout ] &&
  skip "n/a: the ceiling has WebSocket subscribers only"

# ---- open files: every connection is one fd in the generator and one in the server
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
extra=()
if [ "$scenario" = idle-50k ]; then
  reach=$(( nofile - 1000 ))
  [ "$reach" -gt 50000 ] && reach=50000
  [ "$reach" -ge 1000 ] || skip "open-file limit $nofile is too low"
  if [ "$reach" -lt 50000 ]; then
    echo "run-scenario: idle-50k: the open-file limit is $nofile (hard limit $(ulimit -Hn)); running $reach connections"
    extra=(--subscribers "$reach")
  fi
fi

# CPU jiffies (all but idle and iowait) of the whole machine and of the server's
# process tree, and the time: what other processes used during the run is the
# difference (the report flags runs that shared the machine)
cpu_snap() {
  "$PY" - "$1" <<'PYEOF'
import os, sys, time
root = int(sys.argv[1])
with open("/proc/stat") as f:
    c = [int(x) for x in f.readline().split()[1:]]
    machine = sum(c[0:3]) + sum(c[5:8])  # user nice system, irq softirq steal (tasks are charged softirq)
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            r = s[s.rindex(")") + 2:].split()
            procs[int(d)] = (int(r[1]), int(r[11]) + int(r[12]))
        except (OSError, ValueError, IndexError):
            pass
tree, todo = set(), [root]
while todo:
    p = todo.pop()
    if p in procs and p not in tree:
        tree.add(p)
        todo += [c for c, (pp, _) in procs.items() if pp == p]
print(machine, sum(procs[p][1] for p in tree), time.monotonic())
PYEOF
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {  # PORT: until something accepts on it (10 s)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
descendants() {  # PID -> its child processes, recursively
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

srv_pid=""
srv_kids=""
stop_server() {
  [ -n "$srv_pid" ] || return 0
  local pid=$srv_pid
  srv_pid=""
  srv_kids=$(descendants "$pid" | tr '\n' ' ')
  if own_server; then kill -TERM "$pid" 2>/dev/null || true
  else "$PEER" stop "$pid" >/dev/null 2>&1 || true; fi
  for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
  if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; sleep 1; fi
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  local k
  for k in $srv_kids; do alive "$k" && kill -KILL "$k" 2>/dev/null || true; done
  own_server && wait "$pid" 2>/dev/null || true
  return 0
}
bench_pid=""
stop_bench() {
  [ -n "$bench_pid" ] || return 0
  kill -TERM "$bench_pid" 2>/dev/null || true
  wait "$bench_pid" 2>/dev/null || true
  bench_pid=""
}
trap 'stop_bench; stop_server' EXIT
trap 'echo "run-scenario: interrupted" >&2; stop_bench; stop_server; exit 130' INT TERM

# ---- wait (a little) for the machine to be quiet: other jobs skew every number
busy_pct() {  # CPU busy % over 1 s, all cores
  local a b
  read -ra a < /proc/stat; sleep 1; read -ra b < /proc/stat
  local ta=0 tb=0 i
  for i in 1 2 3 4 5 6 7 8; do ta=$((ta + a[i])); tb=$((tb + b[i])); done
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) tot=$((tb - ta))
  [ "$tot" -gt 0 ] && echo $(( 100 - 100 * idle / tot )) || echo 0
}
quiet_wait=${BENCH_QUIET_WAIT:-30}
busy=$(busy_pct)
waited=0
while [ "$busy" -gt 25 ] && [ "$waited" -lt "$quiet_wait" ]; do
  sleep 4; waited=$((waited + 5)); busy=$(busy_pct)
done

# ---- start the server
port=$(free_port)
api_key=bench-$RANDOM$RANDOM
srv_pin=(); gen_pin=()
[ -n "${BENCH_SERVER_CPUS:-}" ] && srv_pin=(taskset -c "$BENCH_SERVER_CPUS")
[ -n "${BENCH_GENERATOR_CPUS:-}" ] && gen_pin=(taskset -c "$BENCH_GENERATOR_CPUS")
case "$server" in
  herald)
    # --channels.publish anyone: the chat scenario publishes from clients (opt-in)
    "${srv_pin[@]}" "$HERALD_BIN" serve --listen "127.0.0.1:$port" --workers "$HERALD_WORKERS" --api-key "$api_key" \
      --channels.publish anyone --log-level warn --drain-timeout 2s ${HERALD_EXTRA:-} >>"$log.server" 2>&1 &
    srv_pid=$!
    wait_port "$port" || { echo "run-scenario: herald did not start (see $log.server)" >&2; exit 1; } ;;
  ceiling)
    "${srv_pin[@]}" "$CEILING_BIN" --port "$port" >>"$log.server" 2>&1 &
    srv_pid=$!
    wait_port "$port" || { echo "run-scenario: the ceiling did not start (see $log.server)" >&2; exit 1; } ;;
  *)
    srv_pid=$("$PEER" start "$server" "$port") || { echo "run-scenario: peer start $server $port failed" >&2; exit 1; } ;;
esac

# ---- run the generator
read -ra flag_list <<<"$flags"
cmd=("${gen_pin[@]}" "$HERALD_BIN" bench --server "$server" --port "$port" --server-pid "$srv_pid" "${flag_list[@]}" "${extra[@]}"
     --json "$out" "$@")
[ "$server" = herald ] && cmd+=(--api-key "$api_key")
{
  echo "# $(date -u +%FT%TZ) $scenario on $server (pid $srv_pid, port $port), 2-core box shared with the generator"
  echo "# machine busy before the run: ${busy}% (waited ${waited} s); open-file limit $nofile"
  echo "# herald bench --server $server --port $port --server-pid $srv_pid $flags ${extra[*]} --json $out $*"
} >"$log"
# the full output (progress lines included) goes to the log; the terminal gets the summary
# (in the background, so that a TERM or INT to this script acts at once)
snap0=$(cpu_snap "$srv_pid")
"${cmd[@]}" > >(tee -a "$log" | grep --line-buffered -Ev '^herald bench: +[0-9.]+s ') 2>&1 &
bench_pid=$!
rc=0
wait "$bench_pid" || rc=$?
bench_pid=""
snap1=$(cpu_snap "$srv_pid")
stop_server
if [ -s "$log.server" ]; then { echo "# server output:"; cat "$log.server"; } >>"$log"; fi
rm -f "$log.server"
# the peer's own log (nginx error.log, node's output) into ours; its run directory goes
peers_home=${PEERS_HOME:-$HOME/.cache/herald-peers}
case "$server" in
  nchan) plog="$peers_home/nchan-$port/error.log" ;;
  ws-node) plog="$peers_home/ws-node-$port.log" ;;
  *) plog="" ;;
esac
if [ -n "$plog" ] && [ -s "$plog" ]; then { echo "# $server log ($plog):"; tail -n 50 "$plog"; } >>"$log"; fi
case "$server" in
  nchan) rm -rf "${peers_home:?}/nchan-$port" ;;
  ws-node) rm -f "$peers_home/ws-node-$port.log" ;;
esac

# record the run's context in the JSON (the report flags busy machines)
if [ -s "$out" ]; then
  "$PY" - "$out" "$busy" "$nofile" "$HERALD_WORKERS" "$snap0" "$snap1" "$(date -u +%FT%TZ)" <<'EOF'
import json, os, sys
path, busy, nofile, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
(m0, s0, t0), (m1, s1, t1) = ([float(x) for x in a.split()] for a in sys.argv[5:7])
with open(path) as f:
    j = json.load(f)
hz = os.sysconf("SC_CLK_TCK")
bench_s = (j.get("bench_process") or {}).get("cpu_seconds") or 0
wall = t1 - t0
other = ((m1 - m0) - (s1 - s0)) / hz - bench_s  # machine - server tree - generator
j["run_context"] = {"date": sys.argv[7], "busy_before_percent": busy, "nofile": nofile,
                    "herald_workers": workers if j.get("server") == "herald" else None,
                    "wall_seconds": round(wall, 2),
                    "other_cpu_percent": round(max(other, 0) / wall * 100, 1) if wall > 0 else None}
with open(path, "w") as f:
    json.dump(j, f, indent=2)
    f.write("\n")
EOF
fi
exit "$rc"
