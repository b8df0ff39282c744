#!/bin/bash
# Boots the contained systemd (tests/systemd/contained-lib.sh), runs bench/systemd_bench inside it
# as a service of that systemd, prints both tables, and tears everything down. Needs root.
# Usage: bench/systemd-bench.sh [BUILD_DIR]   (default: build; a RelWithDebInfo build with benches)
set -euo pipefail
ROOT=$(dirname "$(realpath "$0")")/..
BUILD_DIR=$(realpath "${1:-$ROOT/build}")
BENCH="$BUILD_DIR/bench/systemd_bench"
[ -x "$BENCH" ] || { echo "$BENCH: not built (cmake -DRUNSCOPE_BENCH=ON)" >&2; exit 2; }
source "$ROOT/tests/systemd/contained-lib.sh"
trap contained_teardown EXIT
trap 'exit 130' INT TERM
contained_boot
timeout --kill-after=10 600 bash -c "$(declare -f ct_in contained_run); CT_PID1=$CT_PID1; CT_LIB_DIR=$CT_LIB_DIR; contained_run \"\$@\"" \
  _ "$BENCH" &
wait $!
