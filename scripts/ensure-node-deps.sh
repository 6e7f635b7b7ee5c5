#!/usr/bin/env bash
# Install the npm packages the integration tests use (tests/package.json).
set -euo pipefail
cd "$(dirname "$0")/../tests"
if [ ! -d node_modules ] || [ package.json -nt node_modules/.stamp ]; then
  npm install --silent --no-audit --no-fund >/dev/null
  touch node_modules/.stamp
fi
