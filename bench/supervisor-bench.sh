#!/bin/bash
# Boots the contained systemd (tests/systemd/contained-lib.sh), runs bench/supervisor_bench inside it
# as a service of that systemd (where supervisor homes cost what, docs/daemon.md), tears it down.
# Needs root. Usage: bench/supervisor-bench.sh [BUILD_DIR]   (knobs: SUPERVISOR_BENCH_STARTS, _ROUNDS)
set -euo pipefail
ROOT=$(dirname "$(realpath "$0")")/..
BUILD_DIR=$(realpath "${1:-$ROOT/build}")
BENCH="$BUILD_DIR/bench/supervisor_bench"
[ -x "$BENCH" ] || { echo "$BENCH: not built (cmake -DRUNSCOPE_BENCH=ON)" >&2; exit 2; }
source "$ROOT/tests/systemd/contained-lib.sh"
trap contained_teardown EXIT
trap 'exit 130' INT TERM
contained_boot
CT_EXTRA_ENV="SUPERVISOR_BENCH_STARTS=${SUPERVISOR_BENCH_STARTS:-500}"
timeout --kill-after=10 600 bash -c "$(declare -f ct_in contained_run); CT_PID1=$CT_PID1; CT_LIB_DIR=$CT_LIB_DIR; \
  CT_EXTRA_ENV='$CT_EXTRA_ENV'; contained_run \"\$@\"" _ env "SUPERVISOR_BENCH_ROUNDS=${SUPERVISOR_BENCH_ROUNDS:-3}" "$BENCH" &
wait $!
