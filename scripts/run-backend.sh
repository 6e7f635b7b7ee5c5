#!/usr/bin/env bash
# The chat demo with an application backend in the loop (`make run-backend`):
# examples/backend/server.mjs (Node) on BACKEND_LISTEN and herald on LISTEN,
# with the proxy hooks and webhooks pointed at the backend (BACKEND_FLAGS
# below: the one place they are written; tests/integration/
# test_backend_example.mjs runs this script). In the foreground; Ctrl-C (or a
# TERM to this script) stops both, and either one exiting stops the other.
#
#   scripts/run-backend.sh                                  # herald :8080, backend :8090
#   LISTEN=127.0.0.1:9080 BACKEND_LISTEN=127.0.0.1:9090 scripts/run-backend.sh --log-level debug
#
# Environment: HERALD_BIN (default build/herald), LISTEN, BACKEND_LISTEN,
# DEMO_FLAGS (from the Makefile: what the demo pages need), WEBHOOK_SECRET and
# HOOK_KEY (shared by both processes; demo values by default), STORE_FILE (the
# backend appends chat messages there as JSON lines). Extra arguments go to
# herald. examples/backend/README.md explains each hook.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
HERALD_BIN=${HERALD_BIN:-$root/build/herald}
LISTEN=${LISTEN:-127.0.0.1:8080}
BACKEND_LISTEN=${BACKEND_LISTEN:-127.0.0.1:8090}
export WEBHOOK_SECRET=${WEBHOOK_SECRET:-demo-webhook-secret}
export HOOK_KEY=${HOOK_KEY:-demo-hook-key}
[ -x "$HERALD_BIN" ] || { echo "run-backend.sh: $HERALD_BIN not found: run make first" >&2; exit 2; }
command -v node >/dev/null || { echo "run-backend.sh: node not found (the example backend is Node 18+)" >&2; exit 2; }

backend="http://$BACKEND_LISTEN"
# Every hook at the backend, Herald authenticating itself with HOOK_KEY; the
# chat namespace's subscribes and publishes go through the backend; webhooks
# (the default events) signed with WEBHOOK_SECRET.
BACKEND_FLAGS=(
  --proxy.connect-url "$backend/herald/connect"
  --proxy.refresh-url "$backend/herald/refresh"
  --proxy.subscribe-url "$backend/herald/subscribe"
  --proxy.publish-url "$backend/herald/publish"
  --proxy.rpc-url "$backend/herald/rpc"
  --proxy.headers "X-Herald-Key: $HOOK_KEY"
  --namespace.chat.proxy-subscribe true
  --namespace.chat.proxy-publish true
  --webhook.url "$backend/herald/webhook"
  --webhook.secret "$WEBHOOK_SECRET"
)

pids=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BACKEND_LISTEN=$BACKEND_LISTEN HERALD_URL="http://$LISTEN" node "$root/examples/backend/server.mjs" &
pids+=($!)
# shellcheck disable=SC2086 # DEMO_FLAGS is a list of flags
"$HERALD_BIN" serve --listen "$LISTEN" --static "$root/examples" ${DEMO_FLAGS:-} "${BACKEND_FLAGS[@]}" "$@" &
pids+=($!)
echo "run-backend.sh: herald on http://$LISTEN, backend on $backend — open $backend/ to log in; Ctrl-C stops both"
status=0
wait -n "${pids[@]}" || status=$?
exit "$status"
