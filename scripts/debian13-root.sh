#!/bin/bash
# The Debian 13 (trixie) root of the second CI stack: sdbus-c++ 2.x, systemd 257, g++ 14.
# Made once with debootstrap (bookworm's can make trixie; about 3 minutes and Debian's mirror),
# kept packed OUTSIDE the clone without apt's cache (about 260 MB), unpacked per use in seconds.
#   scripts/debian13-root.sh ensure           makes the packed root when it is missing
#   scripts/debian13-root.sh unpack DIR       ensure, then unpack it into DIR (a new folder)
#   scripts/debian13-root.sh run DIR CMD...   runs CMD as root inside the root at DIR, this tree
#                                             bind-mounted at /src (cwd /src)
#   scripts/debian13-root.sh remove DIR       removes an unpacked root (refuses if anything is mounted in it)
# `run` makes every mount in a private mount namespace of its own, so they all go when CMD ends,
# also when it fails or is killed; the EXIT trap unmounts them in order besides. Needs root.
# Environment: RUNSCOPE_ROOT_CACHE (folder of the packed roots, default /var/cache/runscope),
# RUNSCOPE_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE_DIR=${RUNSCOPE_ROOT_CACHE:-/var/cache/runscope}
MIRROR=${RUNSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the second stack builds, tests and packages with (scripts/setup.sh's list, for trixie;
# systemd-dev holds systemd.pc there, rpm is for checking the spec against sdbus-c++ 2.x).
# No sudo on purpose: a minimal Debian root has none, and the README's commands must work there.
PACKAGES="build-essential cmake pkg-config ccache git ca-certificates
  libsdbus-c++-dev libsdbus-c++-bin libsystemd-dev libtomlplusplus-dev libspdlog-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev googletest
  systemd dbus util-linux procps python3 zstd
  debhelper dpkg-dev fakeroot lintian bash-completion man-db systemd-dev rpm
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libmsgpack-cxx-dev
  golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev golang-google-protobuf-dev"
# The packed root's name carries a hash of what it was made from: a changed list makes a new one.
KEY=$(printf '%s\n' trixie "$PACKAGES" | sha256sum | cut -c1-12)
PACKED=$CACHE_DIR/trixie-root-$KEY.tar.zst

die() { echo "debian13-root: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"

make_packed() {
  command -v debootstrap >/dev/null && command -v zstd >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap zstd >/dev/null
  mkdir -p "$CACHE_DIR"
  local work
  work=$(mktemp -d "$CACHE_DIR/make.XXXXXX")
  # Removed on any exit: a half-made root is never packed or kept.
  trap 'umount -R "$work/root/proc" 2>/dev/null; rm -rf "$work"' EXIT
  echo "debian13-root: debootstrap trixie into $work/root (a few minutes, once)"
  debootstrap --variant=minbase trixie "$work/root" "$MIRROR" > "$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # The packages in a mount namespace of its own: its /proc goes with it.
  unshare --mount --propagation private bash -euc '
    root=$1; shift
    mount -t proc proc "$root/proc"
    chroot "$root" apt-get update -qq
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    chroot "$root" apt-get clean' _ "$work/root" $PACKAGES > "$work/apt.log" 2>&1 ||
    { tail -n 30 "$work/apt.log" >&2; die "installing the packages in the root failed (log above)"; }
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin
  tar -C "$work/root" --numeric-owner --xattrs -cf - . | zstd -q -T0 -3 -o "$work/packed.tar.zst"
  mv "$work/packed.tar.zst" "$PACKED"
  rm -rf "$work"
  trap - EXIT
  # Older packed roots (another package list) are of no use any more.
  find "$CACHE_DIR" -maxdepth 1 -name 'trixie-root-*.tar.zst' ! -name "${PACKED##*/}" -delete
  echo "debian13-root: packed at $PACKED ($(du -h "$PACKED" | cut -f1))"
}

# One maker at a time: a second caller (two worktrees' tests, CI's background maker) waits for
# the first's root instead of making its own beside it.
ensure() {
  [ -s "$PACKED" ] && return 0
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.make.lock"
  flock 9
  [ -s "$PACKED" ] || make_packed
  exec 9>&-
}

unpack() {
  local dir=$1
  [ ! -e "$dir" ] || [ -z "$(ls -A "$dir")" ] || die "$dir exists and is not empty"
  ensure
  mkdir -p "$dir"
  zstd -q -d -c "$PACKED" | tar -C "$dir" --numeric-owner --xattrs -xf -
}

# Inside the private mount namespace: the mounts CMD needs, then CMD in the chroot. The root is
# bound onto itself first (and everything else mounted on top of that), so that inside the chroot
# `/` is a mount point: systemd 257 as PID 1 marks `/` MS_SLAVE and exits 255 when it is not.
run_inner() {
  local root=$1; shift
  mount --bind "$root" "$root"
  trap 'umount -R "$root" 2>/dev/null || umount -lR "$root" 2>/dev/null || true' EXIT
  mount -t proc proc "$root/proc"
  # A fresh, read-only sysfs: the host's /sys/fs/cgroup mounts are not carried in. What cgroup
  # a test sees is a cgroup2 at /sys/fs/cgroup/unified, this machine's hybrid layout (no v1).
  mount -t sysfs -o ro sysfs "$root/sys"
  mount -t tmpfs -o mode=0755 tmpfs "$root/sys/fs/cgroup"
  mkdir "$root/sys/fs/cgroup/unified"
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup/unified"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/tmp"
  mkdir -p "$root/src" "$root/var/cache/ccache" "$CACHE_DIR/ccache-trixie"
  mount --bind "$SRC" "$root/src"
  # A git worktree's .git names the main repository's folder: that too, read-only, at its own path
  # (packaging/deb/build.sh asks git which files are the tree's).
  local common
  if [ -f "$SRC/.git" ] && common=$(git -C "$SRC" rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
    mkdir -p "$root$common"
    mount --bind "$common" "$root$common"
    mount -o remount,bind,ro "$root$common"
  fi
  # g++ 14's objects are not the host's: a ccache of their own, kept beside the packed root.
  # CCACHE_NOHASHDIR: a fresh clone's build folder still hits (only debug info's folder differs).
  mount --bind "$CACHE_DIR/ccache-trixie" "$root/var/cache/ccache"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    CCACHE_DIR=/var/cache/ccache CCACHE_BASEDIR=/src CCACHE_NOHASHDIR=1 ${CI:+CI=$CI} ${CCACHE_DISABLE:+CCACHE_DISABLE=$CCACHE_DISABLE} \
    /bin/bash -c 'cd /src && exec "$@"' _ "$@"
}

cmd=${1:-}
case "$cmd" in
  ensure) ensure ;;
  path) echo "$PACKED" ;;
  unpack) [ $# -eq 2 ] || die "usage: $0 unpack DIR"; unpack "$2" ;;
  run)
    [ $# -ge 3 ] || die "usage: $0 run DIR CMD..."
    root=$(realpath "$2"); shift 2
    [ -x "$root/usr/lib/systemd/systemd" ] || die "$root is not an unpacked trixie root"
    exec unshare --mount --propagation private bash -c "$(declare -f run_inner); SRC='$SRC' CACHE_DIR='$CACHE_DIR'; run_inner \"\$@\"" \
      _ "$root" "$@"
    ;;
  remove)
    [ $# -eq 2 ] || die "usage: $0 remove DIR"
    root=$(realpath "$2")
    if grep -q " $root/" /proc/self/mounts; then die "$root still has mounts; not removing"; fi
    rm -rf --one-file-system "$root"
    ;;
  *) die "usage: $0 ensure | path | unpack DIR | run DIR CMD... | remove DIR" ;;
esac
