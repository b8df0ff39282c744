#!/bin/bash
# `runscope exec -- true` CLI against CLI (issue 13 point 4), as root:
#   systemd path: inside the contained systemd 252 (tests/systemd/contained-lib.sh), against
#                 `systemd-run --scope true` in the same run (target: exec p50 <= 1.0x);
#   cgroupfs path: on this host's cgroupfs (v1 on a hybrid host, relative parent), against a bare
#                 fork+exec+wait of /bin/true and `exec --no-cgroups` (what the CLI itself costs).
# bench/exec_bench interleaves the cases round by round; it prints a table and `exec case=...` lines.
# On the systemd path each invocation starts once the scopes of the ones before are gone (systemd-run
# returns leaving its scope to systemd, which removes it some 30 ms later; exec sends the emptied
# scope's stop and returns) and after a 50 ms pause: an invocation right after a busy one runs about
# 10 ms faster on the contained systemd, whichever CLI it is, so without the pause the case that ran
# just before decided the figures (bench/exec_bench.cpp, --idle). Then the same with the kernel's
# wait for the first cgroup migration after a pause (an RCU grace period, 12-23 ms here, the same
# for both CLIs: systemd moves either's process into its scope) taken beforehand, untimed
# (--warm-cgroup-lock): what remains is the CLIs' own cost. Then the same as shell loops: bursts
# of 10 of one case in a row, each invocation paying for what the one before it left.
# Usage: bench/exec-bench.sh [BUILD_DIR] [ROUNDS]   (defaults: build, 100)
set -euo pipefail
ROOT=$(dirname "$(realpath "$0")")/..
BUILD_DIR=$(realpath "${1:-$ROOT/build}")
ROUNDS=${2:-100}
BENCH="$BUILD_DIR/bench/exec_bench"
RUNSCOPE="$BUILD_DIR/src/runscope"
for bin in "$BENCH" "$RUNSCOPE"; do
  [ -x "$bin" ] || { echo "$bin: not built" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "exec-bench: needs root (cgroupfs, a contained systemd)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/runscope-exec-bench.XXXXXX)
PARENT="runscope-bench-$$"
source "$ROOT/tests/systemd/contained-lib.sh"
cleanup() {
  contained_teardown
  # exec's cgroups go to "<parent>-exec" beside the configured parent; each run removes its own.
  find /sys/fs/cgroup -maxdepth 6 -type d -name "$PARENT-exec" 2>/dev/null | while read -r dir; do
    rmdir "$dir" 2>/dev/null || echo "exec-bench: could not remove $dir" >&2
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "=== exec-bench: systemd path (contained systemd), $ROUNDS rounds"
contained_boot
timeout --kill-after=10 600 bash -c "$(declare -f ct_in contained_run); CT_PID1=$CT_PID1; CT_LIB_DIR=$CT_LIB_DIR; \
  contained_run \"\$@\"" _ "$BENCH" "$ROUNDS" \
  --settle "/sys/fs/cgroup/system.slice/run-*.scope" --settle "/sys/fs/cgroup/runscope.slice/runscope-exec.slice/*.scope" \
  --idle 50 "systemd_run=systemd-run --quiet --scope /bin/true" "exec_systemd=$RUNSCOPE exec -- /bin/true" &
wait $!
echo "=== exec-bench: systemd path after a pause, the kernel's first-migration wait taken beforehand, $ROUNDS rounds"
timeout --kill-after=10 600 bash -c "$(declare -f ct_in contained_run); CT_PID1=$CT_PID1; CT_LIB_DIR=$CT_LIB_DIR; \
  contained_run \"\$@\"" _ "$BENCH" "$ROUNDS" \
  --settle "/sys/fs/cgroup/system.slice/run-*.scope" --settle "/sys/fs/cgroup/runscope.slice/runscope-exec.slice/*.scope" \
  --idle 50 --warm-cgroup-lock "systemd_run_warm=systemd-run --quiet --scope /bin/true" \
  "exec_systemd_warm=$RUNSCOPE exec -- /bin/true" &
wait $!
echo "=== exec-bench: systemd path as shell loops (bursts of 10), $(( (ROUNDS + 9) / 10 )) rounds"
timeout --kill-after=10 600 bash -c "$(declare -f ct_in contained_run); CT_PID1=$CT_PID1; CT_LIB_DIR=$CT_LIB_DIR; \
  contained_run \"\$@\"" _ "$BENCH" "$(( (ROUNDS + 9) / 10 ))" \
  --settle "/sys/fs/cgroup/system.slice/run-*.scope" --settle "/sys/fs/cgroup/runscope.slice/runscope-exec.slice/*.scope" \
  --idle 50 --burst 10 "systemd_run_loop=systemd-run --quiet --scope /bin/true" "exec_systemd_loop=$RUNSCOPE exec -- /bin/true" &
wait $!
contained_teardown

echo "=== exec-bench: cgroupfs path (this host), $ROUNDS rounds"
printf '[cgroups]\nmanager = "cgroupfs"\nparent = "%s"\n' "$PARENT" > "$WORK/runscope.toml"
RUNSCOPE_EXEC_DIR="$WORK/registry" "$BENCH" "$ROUNDS" "bare=/bin/true" \
  "exec_nocgroups=$RUNSCOPE exec --no-cgroups -- /bin/true" \
  "exec_cgroupfs=$RUNSCOPE --config $WORK/runscope.toml exec -- /bin/true"
