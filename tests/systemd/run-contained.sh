#!/bin/bash
# Runs the systemd test layer inside a contained systemd (see contained-lib.sh) and tears it down,
# also when tests fail or hang. Usage: tests/systemd/run-contained.sh BUILD_DIR [gtest args...]
# Exit code: the tests' own (124 on the overall timeout).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [gtest args...]" >&2; exit 2; }
BUILD_DIR=$(realpath "$1"); shift
TESTS="$BUILD_DIR/tests/runscope_systemd_tests"
[ -x "$TESTS" ] || { echo "$TESTS: not built" >&2; exit 2; }
OVERALL_TIMEOUT=${RUNSCOPE_SYSTEMD_TEST_TIMEOUT:-900}

source "$(dirname "$(realpath "$0")")/contained-lib.sh"
trap contained_teardown EXIT
trap 'exit 130' INT TERM

contained_boot
echo "=== contained systemd $(ct_in systemctl --version | head -n1 | cut -d' ' -f2) up (host pid $CT_PID1)"
# In the background and waited on, so INT/TERM reach the trap at once.
timeout --kill-after=10 "$OVERALL_TIMEOUT" bash -c "$(declare -f ct_in contained_run); CT_PID1=$CT_PID1; CT_LIB_DIR=$CT_LIB_DIR; \
  CT_EXTRA_ENV='${RUNSCOPE_TEST_ENV:-}'; contained_run \"\$@\"" _ "$TESTS" "$@" &
status=0
wait $! || status=$?
echo "=== systemd tests exit status $status"
exit "$status"
