#!/bin/sh
# Installs everything runscope needs to build, test and benchmark on Debian 12 or 13 / Ubuntu 22.04+.
# Idempotent: packages already present are left as they are.
set -eu
PACKAGES="build-essential cmake pkg-config git ca-certificates ccache
  libsdbus-c++-dev libsdbus-c++-bin libsystemd-dev libtomlplusplus-dev libspdlog-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev googletest
  clang libclang-rt-dev systemd dbus util-linux procps python3
  debhelper dpkg-dev fakeroot lintian devscripts rpm bash-completion man-db gnuplot-nox
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libmsgpack-cxx-dev
  golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev golang-google-protobuf-dev
  debootstrap zstd"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup.sh: run as root to install:$missing" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
