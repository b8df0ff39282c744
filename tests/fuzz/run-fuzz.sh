#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR (configured with -DRUNSCOPE_FUZZ=ON, built already)
# for SECONDS each, on a scratch copy of its seed corpus, so the committed corpus never grows.
# Fails (exit 1) on any crash, leak, timeout or broken property; the reproducer is kept in
# BUILD_DIR/fuzz-artifacts/<target>/ and its name printed.
# Usage: tests/fuzz/run-fuzz.sh BUILD_DIR SECONDS
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 64
fi
build=$(cd "$1" && pwd)
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
# A failing or interrupted run ends the targets still running before their scratch corpora go.
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$scratch"' EXIT

shopt -s nullglob
targets=("$build"/tests/fuzz/*_fuzz)
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "run-fuzz: no *_fuzz binaries in $build/tests/fuzz (configure with -DRUNSCOPE_FUZZ=ON and build)" >&2
  exit 1
fi

# run_one BIN: one target on its scratch corpus; its verdict lands in $scratch/NAME.verdict.
run_one() {
  local bin=$1 name corpus artifacts
  name=$(basename "$bin" _fuzz)
  corpus="$scratch/$name"
  artifacts="$build/fuzz-artifacts/$name"
  mkdir -p "$corpus" "$artifacts"
  [[ -d "$here/corpus/$name" ]] && cp -r "$here/corpus/$name/." "$corpus/"
  echo "run-fuzz: $name for ${seconds}s ($(ls "$corpus" | wc -l) seeds)"
  # -rss_limit_mb: a parser that balloons on a small input is a finding too.
  if "$bin" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" >"$scratch/$name.log" 2>&1; then
    echo ok > "$scratch/$name.verdict"
  else
    echo failed > "$scratch/$name.verdict"
  fi
}

# libFuzzer uses one core per target: run as many targets at once as there are cores, each still
# for the full SECONDS (RUNSCOPE_FUZZ_JOBS overrides the count).
jobs=${RUNSCOPE_FUZZ_JOBS:-$(nproc)}
running=0
for bin in "${targets[@]}"; do
  if (( running >= jobs )); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$bin" &
  running=$((running + 1))
done
wait

failed=()
for bin in "${targets[@]}"; do
  name=$(basename "$bin" _fuzz)
  artifacts="$build/fuzz-artifacts/$name"
  if [[ "$(cat "$scratch/$name.verdict" 2>/dev/null)" != ok ]]; then
    tail -n 40 "$scratch/$name.log" >&2 || true
    echo "run-fuzz: $name FAILED; reproducer(s): $(ls "$artifacts")" >&2
    failed+=("$name")
    continue
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$scratch/$name.log" | sed "s/^/run-fuzz: $name /"
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run-fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "run-fuzz: all ${#targets[@]} targets ran ${seconds}s each ($jobs at a time) without a crash"
