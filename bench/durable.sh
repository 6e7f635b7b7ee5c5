#!/bin/sh
# bench/durable.sh - API publish throughput and fan-out of the memory engine
# against the durable log (--data-dir, engine.fsync=interval), for
# docs/benchmarks.md "Durable log". Usage: bench/durable.sh [HERALD_BIN]
# Prints one line per run: engine, payload, publications/s, deliveries/s.
set -eu
BIN=${1:-build/herald}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
run() { # $1 label, $2 payload bytes, $3 subscribers, $4 rate, then serve flags
    label=$1 bytes=$2 subs=$3 rate=$4
    shift 4
    rm -rf "$DIR/data"
    "$BIN" serve --listen 127.0.0.1:18931 --workers 2 --api-key k --log-level warn "$@" &
    pid=$!
    sleep 0.5
    "$BIN" bench --port 18931 --api-key k --server-pid $pid --subscribers "$subs" --channels "${CHANNELS:-64}" --publish-rate "$rate" \
        --payload-bytes "$bytes" --publishers "${PUBLISHERS:-64}" --pipeline "${PIPELINE:-1}" --warmup 2 --duration 5 --quiet --json "$DIR/r.json" || true
    kill $pid; wait $pid || true
    python3 - "$label" "$bytes" "$DIR/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[3]))
m = r["messages"]
print(f"{sys.argv[1]:9} {sys.argv[2]:>5} B: {m['publish_per_second']:>9.0f} publications/s, "
      f"{m['per_second']:>9.0f} deliveries/s, lost {m['lost']}, errors {m['publish_errors']}")
PY
}
for bytes in 64 4096; do
    run memory "$bytes" 64 200000
    run durable "$bytes" 64 200000 --data-dir "$DIR/data"
done
CHANNELS=1 run memory 64 1000 200
CHANNELS=1 run durable 64 1000 200 --data-dir "$DIR/data"
