#!/bin/bash
# The second CI stack: the tree on Debian 13 (sdbus-c++ 2.x, g++ 14, systemd 257), in a throwaway
# copy of the cached trixie root (scripts/debian13-root.sh; made by debootstrap when missing).
# scripts/test.sh runs it after the Debian 12 layers; alone: scripts/test-debian13.sh [--no-e2e].
# Inside the root: one plain build of the unit and systemd test binaries (and the programs they
# drive), the unit layer, the systemd layer against a contained systemd 257 booted from that root,
# and the package e2e (.deb built there, lintian, install, daemon under systemd 257, restart,
# upgrade, purge). The host layer is not repeated: it tests this machine's kernel, the same one.
# Needs root. The root copy and every mount are removed on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
E2E=1
[ "${1:-}" = "--no-e2e" ] && E2E=0
[ "$(id -u)" -eq 0 ] || { echo "debian13: SKIPPED: needs root (chroot, mounts, a contained systemd)"; exit 0; }
JOBS=$(nproc)
BUILD=build-debian13
WORK=$(mktemp -d /var/tmp/runscope-debian13.XXXXXX)
ROOT=$WORK/root
cleanup() {
  local status=$?
  scripts/debian13-root.sh remove "$ROOT" 2>/dev/null || echo "debian13: could not remove $ROOT" >&2
  rmdir "$WORK" 2>/dev/null || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
in_root() { scripts/debian13-root.sh run "$ROOT" "$@"; }
timed() {
  local what=$1 t0=$SECONDS; shift
  echo "=== debian13: $what"
  "$@"
  echo "=== debian13: $what: $((SECONDS - t0)) s"
}

timed "the trixie root (cached at $(scripts/debian13-root.sh path))" scripts/debian13-root.sh unpack "$ROOT"
in_root sh -c 'echo "    g++ $(g++ -dumpfullversion), cmake $(cmake --version | head -n1 | cut -d" " -f3),'\
' sdbus-c++ $(dpkg-query -W -f="\${Version}" libsdbus-c++-dev), systemd $(dpkg-query -W -f="\${Version}" systemd)"'
# Compiled as the .deb is (scripts/debian-flags.sh), so the e2e's package build below is mostly
# served by ccache.
timed "build $BUILD (unit and systemd test binaries, the programs)" in_root bash -c \
  ". scripts/debian-flags.sh && debian_ccache_export /src && debian_cmake_args &&
   cmake -S . -B $BUILD \"\${DEBIAN_CMAKE_ARGS[@]}\" -DRUNSCOPE_BENCH=OFF >/dev/null &&
   cmake --build $BUILD -j$JOBS --target runscope_unit_tests runscope_systemd_tests"
timed "unit tests" in_root ctest --test-dir "$BUILD" -L '^unit$' -j"$JOBS" --output-on-failure
timed "systemd tests (contained systemd 257)" in_root tests/systemd/run-contained.sh "$BUILD"
if [ "$E2E" -eq 1 ]; then
  timed "e2e: package install-to-purge under systemd 257" in_root tests/e2e/run-e2e.sh
else
  echo "=== debian13: e2e SKIPPED (--no-e2e)"
fi
echo "=== debian13: all layers passed"
