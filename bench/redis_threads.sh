#!/bin/sh
# bench/redis_threads.sh - CPU per publication of each Herald thread (the
# workers herald-w*, the Redis engine thread herald-redis) and of
# redis-server, for docs/benchmarks.md "Redis engine: API publish
# throughput" (third round). One run of bench/redis.sh's load (64 channels
# with one WebSocket subscriber each, 50 API connections x 64 pipelined
# publishes, offered 200,000/s, 2 s warm-up, 5 s measured) against one node
# with 2 workers; each thread's utime+stime (/proc/PID/task/*/stat) over
# 4.6 s of the measured window divided by the publications in it.
# Usage: bench/redis_threads.sh HERALD_BIN SHARDS [serve args]   (SHARDS 0 = memory engine, 1 = one redis-server)
set -eu
BIN=$1; SH=$2; shift 2
PORT=${PORT:-18977}; RPORT=${RPORT:-6477}
DIR=$(mktemp -d)
rpid=""
eng=""
if [ "$SH" != 0 ]; then
    redis-server --port "$RPORT" --save "" --appendonly no --bind 127.0.0.1 --daemonize no --logfile "$DIR/r.log" &
    rpid=$!
    sleep 0.4
    eng="--engine redis --redis 127.0.0.1:$RPORT"
fi
# shellcheck disable=SC2086
"$BIN" serve --listen 127.0.0.1:"$PORT" --workers 2 --api-key k --log-level warn $eng "$@" &
pid=$!
sleep 0.7
snap() { # "thread=ticks ..." summed by thread name, then redis=ticks
    for t in /proc/$pid/task/*; do
        awk '{c=$0; sub(/^[0-9]+ \(/,"",c); n=c; sub(/\).*/,"",n); sub(/^[^)]*\) /,"",c); split(c,f," "); print n, f[12]+f[13]}' "$t/stat"
    done | awk '{a[$1]+=$2} END {for (k in a) printf "%s=%d ", k, a[k]}'
    [ -z "$rpid" ] || awk '{printf "redis=%d", $14+$15}' "/proc/$rpid/stat"
    echo
}
(sleep 2.2; snap > "$DIR/s0"; sleep 4.6; snap > "$DIR/s1") &
sp=$!
"$BIN" bench --port "$PORT" --api-key k --subscribers 64 --channels 64 --publish-rate 200000 --payload-bytes 64 \
    --publishers 50 --pipeline 64 --warmup 2 --duration 5 --quiet --json "$DIR/r.json" > /dev/null 2>&1 || true
wait $sp
kill $pid; wait $pid || true
[ -z "$rpid" ] || { kill "$rpid"; wait "$rpid" || true; }
python3 - "$DIR/r.json" "$(cat "$DIR/s0")" "$(cat "$DIR/s1")" "$SH" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["messages"]
def snap(s):
    return {k: int(v) for k, v in (x.split("=") for x in s.split())}
a, b, hz = snap(sys.argv[2]), snap(sys.argv[3]), int(sys.argv[5])
rate, secs = m["publish_per_second"], 4.6
per = {k: (b[k] - a.get(k, 0)) / hz / secs / rate * 1e6 for k in sorted(b)}
herald = sum(v for k, v in per.items() if k != "redis")
print(f"shards={sys.argv[4]} publications/s={rate:.0f} lost={m['lost']} herald={herald:.2f}us/publication | "
      + " ".join(f"{k} {v:.2f}us" for k, v in per.items() if v > 0))
PY
rm -rf "$DIR"
