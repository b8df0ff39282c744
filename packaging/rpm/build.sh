#!/bin/bash
# Builds the runscope RPM from this source tree: packaging/rpm/build.sh OUTDIR
# Makes runscope-VERSION.tar.gz from git's tracked and untracked (non-ignored) files, then runs
# `rpmbuild -bb packaging/rpm/runscope.spec` in a temp _topdir and copies the RPMs into OUTDIR.
# On a host whose rpm database does not hold the build dependencies (e.g. Debian, where they come
# from apt) it passes --nodeps; without find-debuginfo it builds no debuginfo package.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
SPEC=$SRC/packaging/rpm/runscope.spec
VERSION=$(awk '/^Version:/ {print $2}' "$SPEC")
TOP=$(mktemp -d /tmp/runscope-rpm.XXXXXX)
trap 'rm -rf "$TOP"' EXIT

mkdir -p "$TOP/SOURCES"
(cd "$SRC" && git ls-files -z -co --exclude-standard | \
  tar --null --ignore-failed-read -T - --transform "s|^|runscope-$VERSION/|" -czf \
      "$TOP/SOURCES/runscope-$VERSION.tar.gz" 2>/dev/null)
cp "$SRC/packaging/sysusers.d/runscope.conf" "$TOP/SOURCES/runscope.sysusers.conf"

args=(--define "_topdir $TOP" --define "_smp_mflags -j${RUNSCOPE_BUILD_JOBS:-2}")
[ -e "$SRC/src/runscoped/main.cpp" ] || args+=(--without daemon)
compgen -G "$SRC/src/shim/*.cpp" >/dev/null || args+=(--without shim)
command -v dnf >/dev/null || command -v yum >/dev/null || args+=(--nodeps)
[ -x /usr/lib/rpm/find-debuginfo.sh ] || command -v find-debuginfo >/dev/null || \
  args+=(--define "debug_package %{nil}")
rpmbuild -bb "${args[@]}" "$SPEC"
find "$TOP/RPMS" -name '*.rpm' -exec cp {} "$OUT"/ \;
ls "$OUT"/*.rpm
