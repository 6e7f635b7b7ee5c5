#!/usr/bin/env bash
# Install the named Debian packages that are missing (only when root; else
# print the apt-get command to run). Used by `make`, `make run`, `make test`.
set -euo pipefail
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "herald: missing Debian packages: ${missing[*]}" >&2
  echo "herald: run: sudo apt-get install -y ${missing[*]}" >&2
  exit 2
fi
echo "herald: installing ${missing[*]}" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
