#!/usr/bin/env bash
# Install the npm packages the integration tests use (tests/package.json), and
# the SDK's devDependencies (clients/js/package.json: typescript, for the type check).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Node.js may come from Debian (nodejs + npm) or from a vendor package that
# bundles npm: only install Debian's when the commands are missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  "$here/ensure-deps.sh" nodejs npm
fi
cd "$here/../tests"
if [ ! -d node_modules ] || [ package.json -nt node_modules/.stamp ]; then
  npm install --silent --no-audit --no-fund >/dev/null
  touch node_modules/.stamp
fi
cd "$here/../clients/js"
if [ ! -d node_modules ] || [ package.json -nt node_modules/.stamp ]; then
  npm install --silent --no-audit --no-fund >/dev/null
  touch node_modules/.stamp
fi
