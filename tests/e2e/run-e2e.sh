#!/bin/bash
# The install-to-purge end-to-end test (label e2e): the .deb built as a user would build it,
# installed with dpkg on this machine, its INSTALLED units run by a contained systemd (see
# tests/systemd/contained-lib.sh and /work/shared/notes/contained-systemd.md), upgraded, purged.
#   tests/e2e/run-e2e.sh [--keep-debs DIR | --reuse-debs DIR]
# --keep-debs DIR copies the two .debs it builds into DIR as soon as they are built.
# --reuse-debs DIR (developers only, to iterate on the later steps) installs DIR's .debs instead of
# building: the lower version first, the higher as the upgrade. The default path builds both.
# Needs root; refuses to run where runscope is already installed or a `runscope` group exists
# (it would remove them). Everything it makes is removed on exit, also when a step fails:
# the contained systemd, its cgroups, the throwaway users, the package, the temp folders.
# While runscoped is not part of the tree yet, the daemon steps are skipped with a message and
# everything else (build, install, files, units loaded by a real systemd, upgrade, purge) runs.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
KEEP_DEBS=""
REUSE_DEBS=""
case "${1:-}" in
  --keep-debs) KEEP_DEBS=$(mkdir -p "$2" && cd "$2" && pwd) ;;
  --reuse-debs) REUSE_DEBS=$(cd "$2" && pwd) ;;
  "") ;;
  *) echo "usage: $0 [--keep-debs DIR | --reuse-debs DIR]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e: SKIPPED: needs root (dpkg -i, a contained systemd, users)"; exit 0
fi
if dpkg-query -W -f='${Status}' runscope 2>/dev/null | grep -q installed; then
  echo "e2e: runscope is installed on this machine; refusing to purge it" >&2; exit 2
fi
if getent group runscope >/dev/null; then
  echo "e2e: group runscope exists already (someone else's?); refusing to delete it" >&2; exit 2
fi

source "$SRC/tests/systemd/contained-lib.sh"
source "$SRC/tests/e2e/e2e-lib.sh"

E2E_WORK=$(mktemp -d /tmp/runscope-e2e.XXXXXX)
E2E_MEMBER="rse2e-m-$$"
E2E_OTHER="rse2e-o-$$"
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$REUSE_DEBS" ]; then
  step "reuse the .debs in $REUSE_DEBS (developer option: nothing is built)"
  DEB1=$(ls "$REUSE_DEBS"/runscope_*.deb | grep -v "+e2e")
else
  step "build the .deb (packaging/deb/build.sh)"
  if command -v ccache >/dev/null; then
    # A full dpkg-buildpackage all the same; ccache only answers compiles it has seen: those of
    # scripts/test.sh's plain tree, configured as debhelper configures (scripts/debian-flags.sh).
    export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
    source "$SRC/scripts/debian-flags.sh"
    debian_ccache_export "$E2E_WORK/build/runscope"
    # debhelper (compat 13) points HOME at a temp folder: name the real cache, or every build misses.
    CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir 2>/dev/null || true)}
    [ -z "$CCACHE_DIR" ] || export CCACHE_DIR
  fi
  "$SRC/packaging/deb/build.sh" "$E2E_WORK/debs-1" "" "$E2E_WORK/build" > "$E2E_WORK/build-1.log" 2>&1 ||
    { tail -n 40 "$E2E_WORK/build-1.log"; fail "dpkg-buildpackage failed"; }
  DEB1=$(ls "$E2E_WORK"/debs-1/runscope_*.deb)
  [ -z "$KEEP_DEBS" ] || cp "$DEB1" "$KEEP_DEBS"/
fi
VERSION1=$(dpkg-deb -f "$DEB1" Version)
check "lintian reports no errors" bash -c "! lintian '$DEB1' 2>/dev/null | grep '^E:'"
# The Nomad plugin's package, built beside it (issue 14): lint-clean, and tied to this runscope.
NOMAD_DEB=$(ls "$(dirname "$DEB1")"/runscope-nomad-driver_*.deb 2>/dev/null | grep -v "+e2e" | head -n1 || true)
if [ -n "$NOMAD_DEB" ]; then
  check "lintian reports no errors in runscope-nomad-driver" bash -c "! lintian '$NOMAD_DEB' 2>/dev/null | grep '^E:'"
  check "runscope-nomad-driver depends on runscope (= $VERSION1)" \
    bash -c "grep -qF 'runscope (= $VERSION1)' <<<\"\$(dpkg-deb -f '$NOMAD_DEB' Depends)\""
fi
HAVE_DAEMON=0
# (Listed first: `grep -q` in a pipe would end dpkg-deb early, and pipefail would say "absent".)
grep -q '/usr/sbin/runscoped$' <<<"$(dpkg-deb -c "$DEB1")" && HAVE_DAEMON=1

e2e_snapshot_host "$E2E_WORK/before"
step "install $VERSION1 with dpkg -i"
E2E_INSTALLED=1
dpkg -i "$DEB1"
e2e_check_installed "$VERSION1"

step "boot a contained systemd on the installed units"
contained_boot
ok "contained systemd $(ct_in systemctl --version | head -n1 | cut -d' ' -f2) running (host pid $CT_PID1)"
e2e_check_units_loaded

E2E_UPGRADE_DEB=""
if [ "$HAVE_DAEMON" -eq 1 ]; then
  e2e_make_users
  e2e_daemon_start
  e2e_daemon_run_tasks
  e2e_daemon_access
  e2e_daemon_survives "systemctl restart" ct_in systemctl restart runscoped
  e2e_daemon_survives "systemctl reload" ct_in systemctl reload runscoped
  e2e_build_upgrade
  e2e_daemon_survives "upgrade to $VERSION2" ct_in dpkg -i "$E2E_UPGRADE_DEB"
  e2e_check_installed "$VERSION2"
  e2e_daemon_stop_tasks
  e2e_remove_users
  step "purge (inside the contained systemd, whose runscoped the prerm stops)"
  ct_in dpkg --purge runscope
else
  skip "daemon steps (start, run/ps/stats/logs, access, restart, reload, upgrade with tasks):" \
       "this tree has no runscoped yet (src/daemon/main.cpp, branch bus)"
  e2e_unit_standin
  e2e_build_upgrade
  step "upgrade to $VERSION2 with dpkg -i"
  dpkg -i "$E2E_UPGRADE_DEB"
  e2e_check_installed "$VERSION2"
  step "purge"
  dpkg --purge runscope
fi
E2E_INSTALLED=0
contained_teardown
e2e_check_purged "$E2E_WORK/before"
if [ "$HAVE_DAEMON" -eq 1 ]; then
  echo "=== e2e: PASSED ($E2E_CHECKS checks)"
else
  echo "=== e2e: PASSED ($E2E_CHECKS checks; daemon steps SKIPPED: no runscoped in this tree)"
fi
