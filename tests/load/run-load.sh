#!/bin/bash
# N concurrent tasks through a real runscoped (default N=10000), on both of its paths:
#   cgroupfs: on this host's v1 hierarchies, under a RELATIVE parent runscope-test-<pid>-load (so the
#             memory cgroups nest below our own), the API on a private dbus-daemon;
#   systemd:  inside the contained systemd (tests/systemd/contained-lib.sh), one scope per task in a
#             slice of the test's own, the API on a private dbus-daemon in that namespace.
# Each: every task starts (`sleep`), ListTasks and `runscope ps` show all N running, all stop and are
# destroyed, and afterwards no cgroup, scope, shim, task process or state entry is left. Prints the
# daemon's CPU time and peak RSS/threads/fds, the start and stop rates, and `load ...` key=value lines.
#   tests/load/run-load.sh BUILD_DIR [N] [cgroupfs|systemd|both]
# Needs root and a build with benches (bench/load_client). Limits are raised only for this
# script's own processes (ulimit -n for the daemon; the systemd service it runs in has
# TasksMax=infinity); host-wide settings (pid_max, threads-max) are checked, never changed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=$(realpath "${1:?usage: run-load.sh BUILD_DIR [N] [cgroupfs|systemd|both]}")
N=${2:-10000}
WHICH=${3:-both}
LOAD_LIB="$ROOT/tests/load/load-lib.sh"
source "$LOAD_LIB"

[ "$(id -u)" -eq 0 ] || { echo "load: SKIPPED: needs root (cgroupfs, a contained systemd)"; exit 0; }
for bin in runscoped runscope-shim runscope bench/load_client; do
  [ -x "$BUILD_DIR/$(basename "$bin")" ] || [ -x "$BUILD_DIR/src/$(basename "$bin")" ] || [ -x "$BUILD_DIR/$bin" ] ||
    { echo "load: $bin is not built in $BUILD_DIR (cmake -DRUNSCOPE_BENCH=ON)" >&2; exit 2; }
done
load_check_host_limits "$N"

LOAD_WORK=$(mktemp -d /tmp/runscope-load.XXXXXX)
LOAD_PARENT="runscope-test-$$-load"
cleanup() {
  set +e
  [ "$WHICH" = systemd ] || load_v1_remove_parent "$LOAD_PARENT"
  [ -n "${CT_PID1:-}" ] && contained_teardown
  rm -rf "$LOAD_WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$WHICH" = cgroupfs ] || [ "$WHICH" = both ]; then
  echo "=== load: cgroupfs path (v1, relative parent $LOAD_PARENT), N=$N"
  t0=$SECONDS
  load_inner "$BUILD_DIR" cgroupfs "$LOAD_PARENT" "$N" "$LOAD_WORK/cgroupfs"
  load_v1_check_empty "$LOAD_PARENT"
  echo "=== load: cgroupfs path PASSED in $((SECONDS - t0)) s"
fi

if [ "$WHICH" = systemd ] || [ "$WHICH" = both ]; then
  source "$ROOT/tests/systemd/contained-lib.sh"
  echo "=== load: systemd path (contained systemd), N=$N"
  t0=$SECONDS
  # contained_boot can look before PID 1 exec'd systemd (it then reads "offline"): on a loaded
  # machine that happens; a fresh boot is the remedy.
  for try in 1 2 3; do
    contained_boot && break
    contained_teardown
    [ "$try" -lt 3 ] || load_fail "the contained systemd did not boot (3 tries)"
  done
  echo "    contained systemd $(ct_in systemctl --version | head -n1 | cut -d' ' -f2) (host pid $CT_PID1)"
  mkdir -p "$LOAD_WORK/systemd"
  # (Called in an `||` list: contained_run is written for shells without `set -e`.)
  rc=0
  contained_run /bin/bash -c "source '$LOAD_LIB' && load_inner '$BUILD_DIR' systemd rl$$ '$N' '$LOAD_WORK/systemd'" || rc=$?
  [ "$rc" -eq 0 ] || load_fail "the run inside the contained systemd failed (exit $rc)"
  # The slice and its two cpu partition slices stay while runscope's parent exists; no scope may.
  left=$(ct_in systemctl list-units --all --plain --no-legend --type=scope 2>/dev/null | grep -v '^init\.scope' | grep -c '\.scope' || true)
  [ "$left" -eq 0 ] || { ct_in systemctl list-units --all --plain --no-legend --type=scope | head >&2; load_fail "$left scope(s) left"; }
  left=$(ct_in find "/sys/fs/cgroup/rl$$.slice" -name '*.scope' 2>/dev/null | wc -l)
  [ "$left" -eq 0 ] || load_fail "$left scope cgroup(s) left under rl$$.slice"
  echo "    ok: no scope left in systemd (units and cgroups)"
  contained_teardown
  echo "=== load: systemd path PASSED in $((SECONDS - t0)) s"
fi
