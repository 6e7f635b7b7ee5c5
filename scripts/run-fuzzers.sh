#!/usr/bin/env bash
# Run every libFuzzer target in BUILD_DIR for SECONDS each, starting from the
# seed corpus in tests/fuzz/corpus/<name>/ (a scratch copy, so the repository
# is not modified). Fails if any target finds a crash, leak or timeout.
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd)
seconds=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); short=${name#fuzz_}
  mkdir -p "$work/$short"
  [ -d "$root/tests/fuzz/corpus/$short" ] && cp -r "$root/tests/fuzz/corpus/$short/." "$work/$short/"
  echo "fuzz: $name for ${seconds}s"
  if ! (cd "$work" && "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "$work/$short" > "$work/$name.log" 2>&1); then
    echo "fuzz: $name FAILED"; tail -40 "$work/$name.log"; status=1
  else
    grep -E "stat::number_of_executed_units|Done" "$work/$name.log" | tail -2 | sed "s/^/fuzz: $name: /"
  fi
done
exit $status
