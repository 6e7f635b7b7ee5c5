#!/usr/bin/env bash
# h2_fanout.sh - SSE fan-out over HTTP/2 vs HTTP/1.1, the same client for both.
#
# One herald worker; h2load holds 1,000 SSE streams on one channel for 10 s:
# over h2c as 10 connections x 100 streams, over HTTP/1.1 (--h1) as 1,000
# connections. `herald bench` publishes 64-byte payloads at RATE/s to that
# channel (its own single SSE subscriber checks nothing is lost). Reported:
# the SSE bytes h2load received, deliveries/s (bytes / ~100 bytes per event),
# and the server's CPU seconds over the run.
#
# Usage: bench/h2_fanout.sh [RATE]   (default 2000; HERALD_BIN = build/herald)
set -euo pipefail
BIN=${HERALD_BIN:-$(dirname "$0")/../build/herald}
RATE=${1:-2000}
PORT=18780
run() {
  local label=$1; shift
  "$BIN" serve --listen 127.0.0.1:$PORT --workers 1 --api-key bench --http.keepalive-timeout 10m >/dev/null 2>&1 &
  local pid=$!
  sleep 0.5
  local cpu0; cpu0=$(awk '{print $14+$15}' /proc/$pid/stat)
  h2load "$@" -D 10 "http://127.0.0.1:$PORT/sse?channel=bench-0" > /tmp/h2_fanout.$$ 2>&1 &
  local h2l=$!
  sleep 1.5
  "$BIN" bench --port $PORT --api-key bench --transport sse --subscribers 1 --channels 1 \
    --publish-rate "$RATE" --warmup 0 --duration 8 --quiet --json - 2>/dev/null |
    python3 -c 'import json,sys; m=json.load(sys.stdin)["messages"]; print("  published %d (%.0f/s), lost %d" % (m["published"], m["publish_per_second"], m["lost"]))'
  wait $h2l || true
  local cpu1; cpu1=$(awk '{print $14+$15}' /proc/$pid/stat)
  local bytes; bytes=$(sed -n 's/.*total, .* headers.*, \([0-9]*\)) data.*/\1/p; s/^traffic: .*(\([0-9]*\)) data$/\1/p' /tmp/h2_fanout.$$ | tail -1)
  echo "$label: $(grep -o '[0-9]* 2xx' /tmp/h2_fanout.$$) streams, ${bytes} SSE bytes in 10 s," \
       "~$((bytes / 100 / 10)) deliveries/s, server CPU $(( (cpu1 - cpu0) )) ticks ($(getconf CLK_TCK)/s)"
  kill $pid; wait $pid 2>/dev/null || true
  rm -f /tmp/h2_fanout.$$
}
run "h2c  10 conns x 100 streams" -c 10 -m 100 -n 1000
run "HTTP/1.1 1000 conns        " --h1 -c 1000 -n 1000
