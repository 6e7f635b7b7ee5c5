#!/usr/bin/env bash
# Install the npm packages the integration tests use (tests/package.json), and
# the SDK's devDependencies (clients/js/package.json: typescript, for the type check).
# Node 18 (Debian 12's nodejs) or later: the SDK, the tests and the packages
# they pin all support it. The tests run whichever `node` is first in PATH, so
# another Node is checked with PATH=/its/bin:$PATH make test-unit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Node.js may come from Debian (nodejs + npm) or from a vendor package that
# bundles npm: only install Debian's when the commands are missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  "$here/ensure-deps.sh" nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "ensure-node-deps: Node.js $(node --version) is too old: the SDK and the tests need 18 or later (Debian 12's nodejs is 18)" >&2
  exit 1
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
