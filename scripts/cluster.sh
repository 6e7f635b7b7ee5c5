#!/usr/bin/env bash
# A local Herald cluster for trying the Redis engine: one redis-server and
# three herald nodes sharing it, in the foreground; Ctrl-C stops them all.
#
#   scripts/cluster.sh                      # redis on 127.0.0.1:6390, nodes on :8081 :8082 :8083
#   BUILD=build-asan REDIS_PORT=6400 BASE_PORT=9000 NODES=2 scripts/cluster.sh
#
# DEMO_FLAGS (from `make cluster`: the Makefile's, which the demo pages need)
# are added to every node's flags; unset, the nodes run the safe defaults.
#
# Then, e.g.: subscribe on one node, publish through another:
#   websocat ws://127.0.0.1:8082/ws/raw?channel=news &
#   curl -H 'Authorization: apikey secret' -d '{"channel":"news","data":"hi"}' http://127.0.0.1:8081/api/publish
#   curl -H 'Authorization: apikey secret' -d '{}' http://127.0.0.1:8083/api/info     # every node listed
# docs/scaling.md describes the engine and what happens when a node or Redis dies.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
REDIS_PORT=${REDIS_PORT:-6390}
BASE_PORT=${BASE_PORT:-8081}
NODES=${NODES:-3}
API_KEY=${API_KEY:-secret}
herald="$root/$BUILD/herald"
[ -x "$herald" ] || { echo "cluster.sh: $herald not found: run make first" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "cluster.sh: redis-server not installed (apt-get install redis-server)" >&2; exit 2; }

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --dir "$dir" \
  --loglevel warning &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

for i in $(seq 0 $((NODES - 1))); do
  port=$((BASE_PORT + i))
  # shellcheck disable=SC2086 # DEMO_FLAGS is a list of flags
  "$herald" serve --listen "127.0.0.1:$port" --engine redis --redis "127.0.0.1:$REDIS_PORT" \
    --api-key "$API_KEY" --node-id "node$((i + 1))" --static "$root/examples" ${DEMO_FLAGS:-} &
  pids+=($!)
  echo "cluster.sh: node$((i + 1)) on http://127.0.0.1:$port"
done
echo "cluster.sh: redis on 127.0.0.1:$REDIS_PORT, API key \"$API_KEY\"; Ctrl-C stops everything"
wait -n "${pids[@]}" || true
