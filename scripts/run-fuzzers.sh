#!/usr/bin/env bash
# Run every libFuzzer target in BUILD_DIR for SECONDS each, starting from the
# seed corpus in tests/fuzz/corpus/<name>/ (a scratch copy, so the repository
# is not modified), FUZZ_JOBS targets at a time (default: the number of CPUs;
# each target is one process on one core). Fails if any target finds a crash,
# leak or timeout. Each target's summary is printed in name order; a failing
# target's log tail and its finding (the input, base64, up to 8 KiB) come last,
# after every summary, so that the end of the output (all a CI log may keep)
# names what failed and holds what reproduces it:
#   base64 -d > crash && build-fuzz/fuzz_NAME crash
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd)
seconds=${2:-30}
jobs=${FUZZ_JOBS:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_one() { # bin: fuzz it, print its summary; on a finding write NAME.fail and exit 1
  local bin=$1 name short art
  name=$(basename "$bin"); short=${name#fuzz_}
  mkdir -p "$work/$short" "$work/art-$short"
  [ -d "$root/tests/fuzz/corpus/$short" ] && cp -r "$root/tests/fuzz/corpus/$short/." "$work/$short/"
  echo "fuzz: $name for ${seconds}s"
  if ! (cd "$work" && "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/art-$short/" "$work/$short" > "$work/$name.log" 2>&1); then
    echo "fuzz: $name FAILED (details at the end)"
    { echo "==== fuzz: $name FAILED; the last 60 lines of its log:"; tail -60 "$work/$name.log"
      for art in "$work/art-$short"/*; do
        [ -f "$art" ] || continue
        echo "==== fuzz: $name finding $(basename "$art") ($(stat -c %s "$art") bytes), base64 (first 8 KiB):"
        head -c 8192 "$art" | base64
      done; } > "$work/$name.fail"
    return 1
  fi
  grep -E "stat::number_of_executed_units|Done" "$work/$name.log" | tail -2 | sed "s/^/fuzz: $name: /"
}

status=0 running=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  run_one "$bin" > "$work/$(basename "$bin").out" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || status=1; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || status=1; running=$((running - 1)); done
for out in "$work"/fuzz_*.out; do [ -e "$out" ] && cat "$out"; done
failed=""
for f in "$work"/fuzz_*.fail; do [ -e "$f" ] && cat "$f" && failed="$failed $(basename "$f" .fail)"; done
[ -z "$failed" ] || echo "fuzz: FAILED:$failed"
exit $status
