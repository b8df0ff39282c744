# Boots a real systemd as PID 1 of its own PID, mount, cgroup, UTS and IPC namespaces, in unified
# (cgroup v2) mode, with a real system D-Bus, following ../shared/notes/contained-systemd.md.
# Sourced by run-contained.sh, tests/e2e/run-e2e.sh and bench/systemd-bench.sh. Needs root.
# It boots the systemd of the root it runs in: this machine's (Debian 12, systemd 252), or a
# Debian 13 root's (systemd 257) when run through `scripts/debian13-root.sh run`. The recipe is
# chosen by that systemd's version (ct_recipe): 257 needs `/` to be a mount point, a terminal as
# /dev/console, and a read-only /proc/sys (docs/systemd.md says why).
#   contained_boot          boots it and waits for `running`; sets CT_PID1 (host pid of its PID 1)
#   contained_run CMD...    runs CMD as a transient service of that systemd (so systemd can move
#                           its children into scopes), stdio piped through; returns CMD's status
#   contained_teardown      kills PID 1 by pid and removes the test cgroup tree; safe to repeat
# Safety: the host's /sys/fs/cgroup is never remounted (a fresh cgroup2 is mounted inside the new
# mount namespace only), SYSTEMD_UNIT_PATH holds one folder with NO trailing ':' (else systemd
# reads the host's units), and no process leaves the v1 memory cgroup it started in.

CT_ID="runscope-test-$$"
CT_LIB_DIR=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
CT_CG="/sys/fs/cgroup/unified/$CT_ID"
CT_DIR=""
CT_PID1=""
CT_UNSHARE_PID=""
CT_RECIPE=""
CT_BOOT_TIMEOUT=${CT_BOOT_TIMEOUT:-30}

# -r -w: PID 1's root and folder. Without them, entering its mount namespace from inside a chroot
# would put the command at the namespace's real root (the host's files), not the chroot's.
ct_in() { nsenter -t "$CT_PID1" -m -p -u -i -C -r -w "$@"; }

# The version of the systemd this root would boot ("252", "257").
ct_systemd_version() { /lib/systemd/systemd --version | awk 'NR == 1 {print $2}'; }

# 252: the recipe of contained-systemd.md. 257: the same plus what systemd 257 needs (measured;
# 253 to 256 are not, and take the newer recipe).
ct_recipe() { if [ "$(ct_systemd_version)" -le 252 ]; then echo 252; else echo 257; fi; }

# The host pid of the namespace's PID 1: the descendant of $1 whose innermost pid is 1.
ct_find_pid1() {
  local -a todo=("$1")
  local p
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    if awk '/^NSpid:/ {found = NF > 2 && $NF == 1} END {exit !found}' "/proc/$p/status" 2>/dev/null; then
      echo "$p"; return 0
    fi
    # shellcheck disable=SC2207 # pids: split on white space
    todo+=($(cat /proc/"$p"/task/*/children 2>/dev/null))
  done
  return 1
}

ct_write_units() {
  local units=$CT_DIR/units
  mkdir -p "$units"
  cat > "$units/test.target" <<'UNIT'
[Unit]
Description=runscope contained test target
Wants=dbus.socket dbus.service
UNIT
  cp /lib/systemd/system/dbus.socket /lib/systemd/system/dbus.service "$units/"
  # Empty stand-ins for what dbus.service's default dependencies name, so that a later
  # `systemctl restart dbus.service` finds them (the boot transaction tolerates their absence).
  local target
  for target in sysinit basic; do
    printf '[Unit]\nDescription=contained stand-in for %s.target\n' "$target" > "$units/$target.target"
  done
}

ct_write_inner() {
  {
    echo '#!/bin/bash'
    echo 'set -e'
    if [ "$CT_RECIPE" = 257 ]; then
      cat <<'INNER257'
# systemd 257 marks / MS_SLAVE|MS_REC before its generators and exits 255, silently, when / is
# not a mount point (a plain chroot): scripts/debian13-root.sh binds its root onto itself.
mountpoint -q / || { echo "contained systemd 257: / is not a mount point" >&2; exit 1; }
# It raises fs.nr_open (host-wide) at every boot: its /proc/sys is read-only here.
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
# It logs only to a /dev/console that is a terminal, else to the host's console: its own pty
# (from script(1) in contained_boot), whose output is systemd.log.
console=$(tty)
mount --bind "$console" /dev/console
mount -t tmpfs tmpfs /dev/shm
INNER257
    fi
    cat <<INNER
mount -t tmpfs tmpfs /run
mkdir -p /run/lock
mount -t cgroup2 cgroup2 /sys/fs/cgroup
exec env -i container=runscope-test SYSTEMD_UNIT_PATH=$CT_DIR/units \\
  PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --unit=test.target
INNER
  } > "$CT_DIR/inner.sh"
  chmod +x "$CT_DIR/inner.sh"
}

contained_boot() {
  [ "$(id -u)" -eq 0 ] || { echo "contained systemd: needs root" >&2; return 1; }
  [ -d /sys/fs/cgroup/unified ] || { echo "contained systemd: no cgroup2 at /sys/fs/cgroup/unified" >&2; return 1; }
  CT_DIR=$(mktemp -d /tmp/runscope-contained.XXXXXX)
  CT_RECIPE=$(ct_recipe)
  ct_write_units
  ct_write_inner
  mkdir "$CT_CG"
  local unshare=(unshare --uts --ipc --cgroup --mount --pid --fork --mount-proc --propagation private
                 "$CT_DIR/inner.sh")
  # Only the subshell that becomes unshare (or script) joins the test cgroup (cgroup2 only; v1
  # untouched). For 257, script(1) gives the namespace a pty of its own, its console.
  if [ "$CT_RECIPE" = 257 ]; then
    ( echo "$BASHPID" > "$CT_CG/cgroup.procs"
      exec script -q -e -f -c "exec ${unshare[*]}" /dev/null ) < /dev/null > "$CT_DIR/systemd.log" 2>&1 &
  else
    ( echo "$BASHPID" > "$CT_CG/cgroup.procs"
      exec "${unshare[@]}" ) > "$CT_DIR/systemd.log" 2>&1 &
  fi
  CT_UNSHARE_PID=$!
  local waited=0
  while [ -z "$CT_PID1" ]; do
    CT_PID1=$(ct_find_pid1 "$CT_UNSHARE_PID") || CT_PID1=""
    [ -n "$CT_PID1" ] && break
    waited=$((waited + 1))
    if [ "$waited" -gt 100 ] || ! kill -0 "$CT_UNSHARE_PID" 2>/dev/null; then
      echo "contained systemd: unshare did not start PID 1" >&2; cat "$CT_DIR/systemd.log" >&2; return 1
    fi
    sleep 0.05
  done
  local state="" deadline=$((SECONDS + CT_BOOT_TIMEOUT))
  # PID 1 is inner.sh until it execs systemd; asked before that, systemctl says "offline".
  while [ "$(cat "/proc/$CT_PID1/comm" 2>/dev/null)" != systemd ] && [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$CT_PID1" 2>/dev/null || break
    sleep 0.05
  done
  # Until PID 1 opens its private socket systemctl cannot connect; then --wait blocks until booted.
  # Before PID 1 has made /run/systemd/system, systemctl answers "offline" at once: under load
  # that is a state to wait through, not a result.
  while [ "$SECONDS" -lt "$deadline" ]; do
    state=$(timeout "$CT_BOOT_TIMEOUT" nsenter -t "$CT_PID1" -m -p -u -i -C -r -w \
            systemctl is-system-running --wait 2>&1) || true
    case "$state" in running|degraded|maintenance|stopping) break ;; esac
    kill -0 "$CT_PID1" 2>/dev/null || break
    sleep 0.05
  done
  if [ "$state" != "running" ]; then
    echo "contained systemd: state '$state' instead of 'running' after ${CT_BOOT_TIMEOUT}s" >&2
    ct_in systemctl --no-pager --failed >&2 || true
    tail -n 30 "$CT_DIR/systemd.log" >&2
    return 1
  fi
}

contained_run() {
  # Not `systemd-run --wait --pipe`: those talk over the system bus, and a test that restarts
  # dbus.service would cut them off. Without them systemd-run (and systemctl below) use
  # systemd's private socket, so only the output goes through a file.
  local unit="runscope-run-$$-$RANDOM" out
  out=$(mktemp /tmp/runscope-run-out.XXXXXX)
  ct_in systemd-run --quiet --unit="$unit" --service-type=exec \
    -p DefaultDependencies=no -p Delegate=yes -p TasksMax=infinity -p RemainAfterExit=yes \
    -p StandardOutput="file:$out" -p StandardError="file:$out" \
    --setenv=PATH=/usr/sbin:/usr/bin:/sbin:/bin --setenv=RUNSCOPE_CONTAINED_SYSTEMD=1 \
    ${CT_EXTRA_ENV:+--setenv="$CT_EXTRA_ENV"} \
    --setenv=ASAN_OPTIONS="${ASAN_OPTIONS:-}" --setenv=UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" \
    --setenv=LSAN_OPTIONS="${LSAN_OPTIONS:-} suppressions=$CT_LIB_DIR/lsan.supp" \
    --setenv=TSAN_OPTIONS="${TSAN_OPTIONS:-} suppressions=$CT_LIB_DIR/tsan.supp" "$@"
  tail -n +1 -f "$out" &
  local tail_pid=$! state
  while :; do
    state=$(ct_in systemctl show -p SubState --value "$unit" 2>/dev/null) || state=""
    case "$state" in exited|failed|dead) break ;; esac
    sleep 0.2
  done
  local status
  status=$(ct_in systemctl show -p ExecMainStatus --value "$unit")
  sleep 0.3  # let tail print the last lines
  kill "$tail_pid" 2>/dev/null; wait "$tail_pid" 2>/dev/null
  rm -f "$out"
  return "${status:-1}"
}

contained_teardown() {
  set +e
  if [ -n "$CT_PID1" ] && [ -d "/proc/$CT_PID1" ]; then
    kill -9 "$CT_PID1"  # PID 1 of the namespace: the kernel ends every process in it
  fi
  if [ -n "$CT_UNSHARE_PID" ]; then
    wait "$CT_UNSHARE_PID" 2>/dev/null
  fi
  if [ -d "$CT_CG" ]; then
    local tries=0
    while [ "$(cat "$CT_CG/cgroup.events" 2>/dev/null | awk '/populated/ {print $2}')" = "1" ] && [ $tries -lt 100 ]; do
      sleep 0.05; tries=$((tries + 1))
    done
    find "$CT_CG" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$CT_CG" ] && echo "contained systemd: could not remove $CT_CG" >&2
  fi
  [ -n "$CT_DIR" ] && rm -rf "$CT_DIR"
  CT_PID1=""
  CT_UNSHARE_PID=""
  set -e
}
