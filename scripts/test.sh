#!/bin/bash
# Sets up, builds and runs every runscope test layer. This is the command README.md gives and
# .ci/run calls. Needs root for the host and systemd layers (they skip with a reason otherwise).
#   scripts/test.sh            everything: unit, host, systemd and fault layers, then ASan+UBSan and
#                              TSan builds, the fuzz targets, the package install-to-purge test, and
#                              the Debian 13 stack (scripts/test-debian13.sh)
#   scripts/test.sh --quick    the plain build only (unit, host, systemd, faults; for development)
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
JOBS=$(nproc)

scripts/setup.sh

# Every layer's time, printed last (also when a layer fails), so the tail of a CI log says where
# the budget went.
TIMES=()
T0=$SECONDS
report_times() {
  local status=$?
  echo "=== timings (s):"
  printf '    %s\n' "${TIMES[@]}" "total $((SECONDS - T0))"
  return $status
}
trap report_times EXIT
timed() {
  local what=$1 t=$SECONDS; shift
  "$@"
  TIMES+=("$what $((SECONDS - t))")
}

# The Debian 13 root (debootstrap and apt: the network and one core) is made while the builds
# below use the cores; the Debian 13 stack at the end waits for it. Made once per machine.
ROOT_PID=""
if [ "$QUICK" -eq 0 ] && [ "$(id -u)" -eq 0 ] && ! grep -qx 'VERSION_CODENAME=trixie' /etc/os-release &&
   [ ! -s "$(scripts/debian13-root.sh path)" ]; then
  ROOT_LOG=$(mktemp /var/tmp/runscope-debian13-root.XXXXXX.log)
  echo "=== debian13: making the trixie root in the background (log: $ROOT_LOG)"
  ROOT_T0=$SECONDS
  nice -n 5 scripts/debian13-root.sh ensure > "$ROOT_LOG" 2>&1 &
  ROOT_PID=$!
fi

# build_and_test DIR CMAKE_ARGS... : configures, builds and runs the unit, host and systemd layers.
build_and_test() {
  local dir=$1; shift
  echo "=== build $dir ($*)"
  cmake -S . -B "$dir" -DRUNSCOPE_BENCH=OFF "$@" >/dev/null
  timed "$dir: build" cmake --build "$dir" -j"$JOBS"
  echo "=== $dir: unit tests"
  timed "$dir: unit" ctest --test-dir "$dir" -L '^unit$' -j"$JOBS" --output-on-failure
  if [ "$(id -u)" -eq 0 ]; then
    echo "=== $dir: host tests (real cgroupfs)"
    timed "$dir: host" ctest --test-dir "$dir" -L '^host$' --output-on-failure
    if [ -x tests/systemd/run-contained.sh ] && [ -e "$dir/tests/runscope_systemd_tests" ]; then
      echo "=== $dir: systemd tests (contained systemd)"
      timed "$dir: systemd" tests/systemd/run-contained.sh "$dir"
    fi
  else
    echo "=== $dir: host and systemd tests SKIPPED: they need root (real cgroupfs, a contained systemd)"
  fi
}

# The plain tree is compiled as the .deb is (scripts/debian-flags.sh): the e2e's package builds
# below are then served by ccache.
. scripts/debian-flags.sh
debian_ccache_export "$PWD"
debian_cmake_args
build_and_test build "${DEBIAN_CMAKE_ARGS[@]}"
if [ "$(id -u)" -eq 0 ]; then
  echo "=== build: fault tests (docs/faults.md)"
  timed "build: faults" ctest --test-dir build -L '^faults$' --output-on-failure
fi
if [ "$QUICK" -eq 0 ]; then
  # -g1: line tables only, all a sanitizer report needs (file:line of every frame); full debug
  # info made the sanitizer trees' compiles 10-14% slower.
  SANITIZER_TREE=(-DCMAKE_CXX_FLAGS_DEBUG=-g1)
  # The suppressions only drop reports from inside Debian's uninstrumented sd-bus and sdbus-c++
  # (see the files for why); everything of ours is still checked.
  LSAN_OPTIONS="suppressions=$PWD/tests/systemd/lsan.supp" \
    build_and_test build-asan -DCMAKE_BUILD_TYPE=Debug -DRUNSCOPE_ASAN=ON "${SANITIZER_TREE[@]}"
  echo "=== build-tsan: runscope-nomad-driver and its tests are left out (Debian's gRPC is not built for TSan; docs/nomad.md)"
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/systemd/tsan.supp" \
    build_and_test build-tsan -DCMAKE_BUILD_TYPE=Debug -DRUNSCOPE_TSAN=ON "${SANITIZER_TREE[@]}"
  echo "=== build-fuzz: libFuzzer targets, 30 s each (docs/hardening.md)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DRUNSCOPE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  timed "build-fuzz: build" cmake --build build-fuzz -j"$JOBS"
  timed "build-fuzz: run" tests/fuzz/run-fuzz.sh build-fuzz 30
  echo "=== e2e: package install-to-purge (docs/packaging.md)"
  timed "e2e" tests/e2e/run-e2e.sh
  # The second stack: sdbus-c++ 2.x, systemd 257, the .deb, in a Debian 13 root (docs/systemd.md).
  if grep -qx 'VERSION_CODENAME=trixie' /etc/os-release; then
    echo "=== debian13: this machine is Debian 13: the layers above were that stack"
  else
    if [ -n "$ROOT_PID" ]; then
      wait "$ROOT_PID" || { tail -n 40 "$ROOT_LOG"; echo "debian13: making the trixie root failed" >&2; exit 1; }
      TIMES+=("debian13: root, in the background $((SECONDS - ROOT_T0))")
    fi
    timed "debian13" scripts/test-debian13.sh
  fi
fi
echo "=== all test layers passed"
