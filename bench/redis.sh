#!/bin/sh
# bench/redis.sh - API publish throughput of the memory engine against the
# Redis engine with 1, 2 and 4 local redis-servers, for docs/benchmarks.md
# "Redis engine: API publish throughput". Each configuration runs ROUNDS
# times, interleaved (memory, redis x1, x2, x4, memory, ...), so a change in
# the shared machine's load hits every configuration alike.
# Usage: [ROUNDS=2] [SHARDS="1 2 4"] [PUBLISHERS=50] [PIPELINE=64]
#        [SERVE_ARGS="--redis.publish-batch 1"] bench/redis.sh [HERALD_BIN]
#   herald bench: 64 channels with one WebSocket subscriber each, PUBLISHERS
#   HTTP keep-alive publisher connections with PIPELINE requests in flight
#   each (POST /api/publish, 64-byte payloads), offered 200,000/s
#   (saturated), 2 s warm-up, 5 s measured. Per run: publications/s, deliveries/s, loss,
#   Herald's CPU, every redis-server's CPU (share of one core over the
#   measured run) and evalsha's usec_per_call (INFO commandstats).
set -eu
BIN=${1:-build/herald}
ROUNDS=${ROUNDS:-2}
SHARDS=${SHARDS:-1 2 4}
DIR=$(mktemp -d)
PORT=${PORT:-18941}
RPORT=${RPORT:-6441}
rpids=""
trap 'for p in $rpids; do kill $p 2>/dev/null || true; wait $p 2>/dev/null || true; done; rm -rf "$DIR"' EXIT
for i in 0 1 2 3; do
    redis-server --port $((RPORT + i)) --save "" --appendonly no --bind 127.0.0.1 --daemonize no \
        --logfile "$DIR/redis$i.log" &
    rpids="$rpids $!"
done
sleep 0.5
ticks() { # utime+stime of pid $1 in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
run() { # $1 label, $2 shards (0 = memory engine)
    set --  "$1" "$2"
    addrs=""
    i=0
    while [ $i -lt "$2" ]; do
        redis-cli -p $((RPORT + i)) flushall > /dev/null
        redis-cli -p $((RPORT + i)) config resetstat > /dev/null
        addrs="$addrs${addrs:+,}127.0.0.1:$((RPORT + i))"
        i=$((i + 1))
    done
    eng=""
    [ "$2" = 0 ] || eng="--engine redis --redis $addrs ${SERVE_ARGS:-}"
    # shellcheck disable=SC2086
    "$BIN" serve --listen 127.0.0.1:$PORT --workers 2 --api-key k --log-level warn $eng &
    pid=$!
    sleep 0.7
    before=""
    for p in $rpids; do before="$before $(ticks $p)"; done
    t0=$(date +%s.%N)
    "$BIN" bench --port $PORT --api-key k --server-pid $pid --subscribers 64 --channels 64 --publish-rate 200000 \
        --payload-bytes 64 --publishers "${PUBLISHERS:-50}" --pipeline "${PIPELINE:-64}" --warmup 2 --duration 5 --quiet \
        --json "$DIR/r.json" || true
    t1=$(date +%s.%N)
    after=""
    for p in $rpids; do after="$after $(ticks $p)"; done
    stats=""
    i=0
    while [ $i -lt "$2" ]; do
        stats="$stats $(redis-cli -p $((RPORT + i)) info commandstats | grep -o 'cmdstat_evalsha:calls=[0-9]*,usec=[0-9]*,usec_per_call=[0-9.]*' | sed 's/.*usec_per_call=//')"
        i=$((i + 1))
    done
    kill $pid; wait $pid || true
    python3 - "$1" "$DIR/r.json" "$before" "$after" "$t0" "$t1" "$(getconf CLK_TCK)" "$stats" <<'PY'
import json, sys
label, path, before, after, t0, t1, hz, stats = sys.argv[1:]
r = json.load(open(path))
m = r["messages"]
cpu = r["server_process"]["cpu_percent"]
bcpu = r["bench_process"]["cpu_percent"]
wall = float(t1) - float(t0)
rcpu = [(int(a) - int(b)) / int(hz) / wall * 100 for a, b in zip(after.split(), before.split())]
rcpu = "+".join(f"{c:.0f}" for c in rcpu if c >= 1) or "0"
print(f"{label:10} {m['publish_per_second']:>8.0f} publications/s {m['per_second']:>8.0f} deliveries/s "
      f"lost {m['lost']} errors {m['publish_errors']} herald cpu {cpu if cpu is None else round(cpu)}% "
      f"bench cpu {bcpu if bcpu is None else round(bcpu)}% redis cpu {rcpu}% (whole run) evalsha usec/call {stats.strip() or '-'}")
PY
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ $r -le "$ROUNDS" ]; do
    run memory 0
    for n in $SHARDS; do run "redis x$n" "$n"; done
    r=$((r + 1))
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
