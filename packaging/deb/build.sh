#!/bin/bash
# Builds the runscope .deb from this source tree without writing into it:
#   packaging/deb/build.sh OUTDIR [VERSION] [WORKDIR]
# Copies the tree (git's tracked and untracked, non-ignored files) into WORKDIR (default: a fresh
# temp folder, removed at the end), optionally sets the changelog's top VERSION, runs
# `dpkg-buildpackage -us -uc -b` there and copies the .deb files into OUTDIR. Given an existing
# WORKDIR from an earlier run, it rebuilds there without cleaning (`-nc`), which makes an upgrade
# package with a higher VERSION in seconds.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [VERSION] [WORKDIR]" >&2; exit 2; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
VERSION=${2:-}
WORK=${3:-}
KEEP=1
if [ -z "$WORK" ]; then
  WORK=$(mktemp -d /tmp/runscope-deb.XXXXXX)
  KEEP=0
fi
cleanup() { [ "$KEEP" -eq 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

TREE=$WORK/runscope
CLEAN_FLAG=""
if [ -d "$TREE/debian" ]; then
  CLEAN_FLAG="-nc"   # reuse the earlier build in this WORKDIR
else
  mkdir -p "$TREE"
  (cd "$SRC" && git ls-files -z -co --exclude-standard | \
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$TREE"
fi
if [ -n "$VERSION" ]; then
  # Only the top entry's version changes: enough for dpkg to see a newer package.
  sed -i "1s/^runscope ([^)]*)/runscope ($VERSION)/" "$TREE/debian/changelog"
fi
rm -f "$WORK"/*.deb "$WORK"/*.ddeb
(cd "$TREE" && dpkg-buildpackage -us -uc -b $CLEAN_FLAG -j"${RUNSCOPE_BUILD_JOBS:-2}")
rm -f "$WORK"/*.buildinfo "$WORK"/*.changes
cp "$WORK"/*.deb "$OUT"/
ls "$OUT"/*.deb
