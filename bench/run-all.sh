#!/bin/bash
# Runs every benchmark of issues 2-5, 7 and 13 in one go and writes bench/REPORT.md (each figure beside
# its baseline measured in the same run, the ratio, the target and met / not met) and
# bench/report.png (start latency against tasks already running; reconcile cost against N).
#   bench/run-all.sh [BUILD_DIR]     (default: build; RelWithDebInfo with benches; needs root)
# Knobs: RUN_ALL_OUT (folder for REPORT.md and report.png, default bench/), RUN_ALL_START_ITER (300),
#        RUN_ALL_LOAD_N (1000; 0 skips the load run), RUN_ALL_RUNNING ("0 100 1000"), RUN_ALL_EXEC_ROUNDS (100),
#        RUN_ALL_KEEP_RAW=1 keeps the raw outputs (their folder is printed).
# A bench that fails is reported as such (its output is kept in the report); the others still run.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(realpath "${1:-$ROOT/build}")
OUT=${RUN_ALL_OUT:-$ROOT/bench}
START_ITER=${RUN_ALL_START_ITER:-300}
LOAD_N=${RUN_ALL_LOAD_N:-1000}
RUNNING=${RUN_ALL_RUNNING:-0 100 1000}
EXEC_ROUNDS=${RUN_ALL_EXEC_ROUNDS:-100}
[ "$(id -u)" -eq 0 ] || { echo "run-all: needs root (cgroupfs, a contained systemd)" >&2; exit 2; }
for bin in start_bench kill_bench cpuset_bench systemd_bench exec_bench load_client; do
  [ -x "$BUILD_DIR/bench/$bin" ] || { echo "run-all: $BUILD_DIR/bench/$bin not built (-DRUNSCOPE_BENCH=ON)" >&2; exit 2; }
done
command -v gnuplot > /dev/null || echo "run-all: gnuplot is not installed: no PNG (scripts/setup.sh installs it)" >&2

RAW=$(mktemp -d /tmp/runscope-run-all.XXXXXX)
[ -n "${RUN_ALL_KEEP_RAW:-}" ] || trap 'rm -rf "$RAW"' EXIT  # RUN_ALL_KEEP_RAW=1: kept, for make-report.py
trap 'exit 130' INT TERM
T0=$SECONDS

# step NAME CMD...: runs CMD with its output in $RAW/NAME.txt (and on the terminal), its status
# and duration in $RAW/NAME.status.
step() {
  local name=$1 t=$SECONDS rc; shift
  echo "=== run-all: $name: $*"
  "$@" 2>&1 | tee "$RAW/$name.txt"
  rc=${PIPESTATUS[0]}
  echo "rc=$rc seconds=$((SECONDS - t))" > "$RAW/$name.status"
  [ "$rc" -eq 0 ] || echo "=== run-all: $name FAILED (exit $rc)"
}

machine() {
  local mode=v1
  [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && mode=v2
  [ "$mode" = v1 ] && [ -d /sys/fs/cgroup/unified ] && mode=hybrid
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "kernel=$(uname -r)"
  echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "cpus=$(nproc)"
  echo "mem_mib=$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)"
  echo "cgroup_mode=$mode"
  echo "pid1=$(cat /proc/1/comm)"
  echo "systemd=$(/lib/systemd/systemd --version 2>/dev/null | head -n1 | awk '{print $2}')"
  echo "build=$(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$BUILD_DIR/CMakeCache.txt")"
}

machine > "$RAW/machine.txt"
echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RAW/machine.txt"
for n in $RUNNING; do
  step "start-$n" "$BUILD_DIR/bench/start_bench" "$START_ITER" --running "$n"
done
step kill "$BUILD_DIR/bench/kill_bench" 5
step cpuset "$BUILD_DIR/bench/cpuset_bench" 10 100 1000
step systemd "$ROOT/bench/systemd-bench.sh" "$BUILD_DIR"
step exec "$ROOT/bench/exec-bench.sh" "$BUILD_DIR" "$EXEC_ROUNDS"
if [ -x "$ROOT/bench/daemon-bench.sh" ]; then
  step daemon "$ROOT/bench/daemon-bench.sh" "$BUILD_DIR"
fi
if [ "$LOAD_N" -gt 0 ]; then
  step load "$ROOT/tests/load/run-load.sh" "$BUILD_DIR" "$LOAD_N" cgroupfs
fi
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RAW/machine.txt"
echo "total_seconds=$((SECONDS - T0))" >> "$RAW/machine.txt"

mkdir -p "$OUT"
python3 "$ROOT/bench/make-report.py" "$RAW" "$OUT" || { echo "run-all: the report could not be written" >&2; exit 1; }
[ -n "${RUN_ALL_KEEP_RAW:-}" ] && echo "=== run-all: raw outputs kept in $RAW"
echo "=== run-all: wrote $OUT/REPORT.md$( [ -f "$OUT/report.png" ] && echo " and $OUT/report.png") in $((SECONDS - T0)) s"
