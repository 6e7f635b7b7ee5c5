#!/bin/sh
# bench/durable.sh - the memory engine against the durable log (--data-dir)
# under each engine.fsync policy, for docs/benchmarks.md "Durable log".
# Usage: [PARTS="throughput latency fanout"] [MODES="memory always interval never"]
#        bench/durable.sh [HERALD_BIN]
#   throughput: herald bench, 64 channels, one subscriber and one publisher
#               connection each; publications/s and deliveries/s
#   latency:    bench/publish_latency.py, 8 keep-alive API connections in a
#               closed loop; publications/s, p50/p99 of the answer, and the
#               log's bytes on disk per publication
#   fanout:     1,000 WebSocket subscribers on 16 channels, 16 publishers
#   (every line also gives the server's CPU per delivery, and the durable
#   log thread's CPU per publication over warm-up and run)
#   startup:    (not in the default PARTS) logs of STARTUP_MB (100 500 1000)
#               MB written by bench/durable_log.py (4 KiB publications over
#               1,000 channels, history_size 100); herald's replay log line
set -eu
BIN=${1:-build/herald}
PARTS=${PARTS:-throughput latency fanout}
HERE=$(dirname "$0")
DIR=$(mktemp -d)
PORT=${PORT:-18931}
trap 'rm -rf "$DIR"' EXIT
MODES=${MODES:-memory always interval never}
serve() { # $1 mode, then serve flags; sets pid
    mode=$1
    shift
    rm -rf "$DIR/data"
    set -- "$@" --channels.history-size 1000000 --channels.history-ttl 0
    if [ "$mode" != memory ]; then set -- "$@" --data-dir "$DIR/data" --engine.fsync "$mode"; fi
    "$BIN" serve --listen 127.0.0.1:$PORT --workers 2 --api-key k --log-level warn "$@" &
    pid=$!
    sleep 0.5
}
bench() { # $1 label, $2 payload bytes, $3 subscribers, $4 rate (after serve)
    "$BIN" bench --port $PORT --api-key k --server-pid $pid --subscribers "$3" --channels "${CHANNELS:-64}" --publish-rate "$4" \
        --payload-bytes "$2" --publishers "${PUBLISHERS:-64}" --pipeline 1 --warmup 2 --duration 5 --quiet --json "$DIR/r.json" || true
    logticks=0 # CPU of the durable log's thread over the whole run (clock ticks)
    for t in /proc/$pid/task/*; do
        [ "$(cat $t/comm 2>/dev/null)" = herald-log ] && logticks=$(awk '{print $14 + $15}' $t/stat)
    done
    kill $pid; wait $pid || true
    python3 - "$1" "$2" "$DIR/r.json" "$logticks" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.load(open(sys.argv[3]))
m = r["messages"]
cpu = r["server_process"]["cpu_percent"] or 0
per_s = m["per_second"] or 1
pubs = m["publish_per_second"] * 7  # warm-up + measured seconds
log_us = int(sys.argv[4]) / int(sys.argv[5]) * 1e6 / pubs if pubs else 0
print(f"{sys.argv[1]:9} {sys.argv[2]:>5} B: {m['publish_per_second']:>9.0f} publications/s, "
      f"{m['per_second']:>9.0f} deliveries/s, lost {m['lost']}, errors {m['publish_errors']}; "
      f"server CPU {cpu:.0f} % = {cpu / 100 * 1e6 / per_s:.2f} us/delivery"
      + (f"; log thread {log_us:.1f} us/publication" if sys.argv[1] != "memory" else ""))
PY
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
startup() { # $1 megabytes
    rm -rf "$DIR/data"
    python3 "$HERE/durable_log.py" "$DIR/data" "$1" > /dev/null
    "$BIN" serve --listen 127.0.0.1:$PORT --workers 2 --api-key k --data-dir "$DIR/data" > "$DIR/out" 2>&1 &
    pid=$!
    i=0
    until grep -q "replayed in" "$DIR/out" || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done
    kill $pid; wait $pid || true
    printf '%5s MB: ' "$1"
    grep -o 'durable log: [^"]*' "$DIR/out"
}
for part in $PARTS; do
    echo "== $part"
    if [ $part = startup ]; then
        for mb in ${STARTUP_MB:-100 500 1000}; do startup $mb; done
        continue
    fi
    for bytes in 64 4096; do
        for mode in $MODES; do
            case $part in
            throughput) serve $mode; bench $mode $bytes 64 200000 ;;
            latency)
                serve $mode
                printf '%-9s %5s B: ' $mode $bytes
                dd=""; [ $mode = memory ] || dd="--data-dir $DIR/data"
                python3 "$HERE/publish_latency.py" 127.0.0.1:$PORT k --conns 8 --seconds 5 --bytes $bytes $dd || true
                kill $pid; wait $pid || true ;;
            fanout)
                [ $bytes = 64 ] || continue
                [ $mode = memory ] || [ $mode = interval ] || continue
                serve $mode; CHANNELS=16 PUBLISHERS=16 bench $mode 64 1000 4000 ;;
            esac
        done
    done
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
