# Steps and checks of tests/e2e/run-e2e.sh (sourced after tests/systemd/contained-lib.sh).
# Globals from the caller: SRC, E2E_WORK, E2E_MEMBER, E2E_OTHER, DEB1, VERSION1, HAVE_DAEMON.

E2E_CHECKS=0
E2E_INSTALLED=0
E2E_USERS=""
E2E_TASK_TIMEOUT=${E2E_TASK_TIMEOUT:-30}
UNIT_DIR=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)

step() { echo "=== e2e: $*"; }
ok() { E2E_CHECKS=$((E2E_CHECKS + 1)); echo "    ok: $*"; }
skip() { echo "    SKIPPED: $*"; }
fail() { echo "e2e: FAILED: $*" >&2; exit 1; }
# check DESCRIPTION CMD...: CMD must succeed.
check() {
  local what=$1 out; shift
  out=$("$@" 2>&1) || { echo "$out" | tail -n 20 >&2; fail "$what (command: $*)"; }
  ok "$what"
}
# eventually DESCRIPTION CMD...: CMD must succeed before E2E_TASK_TIMEOUT seconds pass.
eventually() {
  local what=$1; shift
  eventually_quiet "$@" || fail "$what (not within ${E2E_TASK_TIMEOUT}s: $*)"
  ok "$what"
}

# Like eventually, but returns 1 instead of failing, so the caller can say what it saw.
eventually_quiet() {
  local deadline=$((SECONDS + E2E_TASK_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# The contained systemd's unit folder: the harness's test.target and D-Bus units, plus symlinks to
# the units the package INSTALLED (so systemd reads the packaged files, not source copies).
ct_write_units() {
  local units=$CT_DIR/units
  mkdir -p "$units"
  cat > "$units/test.target" <<'UNIT'
[Unit]
Description=runscope e2e target
Wants=dbus.socket dbus.service
UNIT
  cp /lib/systemd/system/dbus.socket /lib/systemd/system/dbus.service "$units/"
  # Empty stand-ins for the boot targets a service with default dependencies orders against; the
  # host's real ones would pull in its boot units (see contained-systemd.md, hazards).
  local target
  for target in sysinit.target basic.target shutdown.target multi-user.target; do
    printf '[Unit]\nDescription=e2e stand-in for %s\n' "$target" > "$units/$target"
  done
  ln -s "$UNIT_DIR/runscoped.service" "$units/runscoped.service"
  ln -s "$UNIT_DIR/runscope.slice" "$units/runscope.slice"
}

# The host's runscope cgroup folders, without the per-pid `runscope-test-PID-*` ones that other
# test runs on this machine make and remove while this one runs (the package never makes those).
e2e_runscope_cgroups() {
  ls -d /sys/fs/cgroup/*/runscope* 2>/dev/null | grep -v '/runscope-test-[0-9]' || true
}

# Records which of the package's paths, groups and cgroup folders exist before the install.
e2e_snapshot_host() {
  local dir=$1 path
  mkdir -p "$dir"
  dpkg-deb -c "$DEB1" | awk '{print substr($6, 2)}' | sed 's|/$||' | grep -v '^$' > "$dir/paths"
  while read -r path; do [ -e "$path" ] && echo "$path"; done < "$dir/paths" > "$dir/existing"
  e2e_runscope_cgroups > "$dir/cgroups"
}

e2e_check_installed() {
  local version=$1
  check "dpkg reports $version installed" \
    test "$(dpkg-query -W -f='${Status} ${Version}' runscope)" = "install ok installed $version"
  check "group runscope exists (sysusers.d)" getent group runscope
  check "/var/lib/runscope is 0750 root:runscope (tmpfiles.d)" \
    test "$(stat -c '%a %U %G' /var/lib/runscope)" = "750 root runscope"
  check "/etc/runscope/runscope.toml is a conffile" \
    sh -c "dpkg-query -W -f='\${Conffiles}' runscope | grep -q ' /etc/runscope/runscope.toml '"
  check "runscoped.service enabled (multi-user.target.wants)" \
    test -L /etc/systemd/system/multi-user.target.wants/runscoped.service
  check "units installed in $UNIT_DIR" test -f "$UNIT_DIR/runscoped.service" -a -f "$UNIT_DIR/runscope.slice"
  check "man pages runscope(1) runscoped(8) runscope.toml(5)" \
    man -w runscope.1 runscoped.8 runscope.toml.5
  check "bash completion completes runscope's commands" bash -c \
    '. /usr/share/bash-completion/bash_completion; _completion_loader runscope;
     COMP_WORDS=(runscope p); COMP_CWORD=1; COMP_LINE="runscope p"; COMP_POINT=10;
     _runscope runscope p runscope; [[ " ${COMPREPLY[*]} " == *" ps "* ]]'
  check "runscope --version runs" /usr/bin/runscope --version
  if [ "$HAVE_DAEMON" -eq 1 ]; then
    check "runscoped and the D-Bus policy installed" \
      test -x /usr/sbin/runscoped -a -f /usr/share/dbus-1/system.d/org.runscope1.conf
  fi
}

e2e_check_units_loaded() {
  local show
  show=$(ct_in systemctl show -p LoadState -p Type -p KillMode -p WatchdogUSec -p NotifyAccess \
         -p Delegate runscoped.service)
  check "runscoped.service loaded from the installed file" grep -qx 'LoadState=loaded' <<<"$show"
  check "runscoped.service: Type=notify, KillMode=process, a watchdog, Delegate" bash -c \
    "grep -qx Type=notify <<<'$show' && grep -qx KillMode=process <<<'$show' &&
     grep -qx NotifyAccess=main <<<'$show' && grep -qx Delegate=yes <<<'$show' &&
     ! grep -qx WatchdogUSec=0 <<<'$show'"
  ct_in systemctl cat runscoped.service | tail -n +2 > "$E2E_WORK/seen.service"
  check "the contained systemd reads the packaged unit file" \
    diff "$E2E_WORK/seen.service" "$UNIT_DIR/runscoped.service"
  check "runscope.slice loaded" \
    grep -qx LoadState=loaded <<<"$(ct_in systemctl show -p LoadState runscope.slice)"
}

e2e_build_upgrade() {
  VERSION2="${VERSION1}+e2e1"
  if [ -n "$REUSE_DEBS" ]; then
    E2E_UPGRADE_DEB=$(ls "$REUSE_DEBS"/runscope_*.deb | grep "+e2e")
    VERSION2=$(dpkg-deb -f "$E2E_UPGRADE_DEB" Version)
    check "$VERSION2 is newer than $VERSION1" dpkg --compare-versions "$VERSION2" gt "$VERSION1"
    return
  fi
  step "rebuild the .deb as $VERSION2 (same build tree, higher version)"
  "$SRC/packaging/deb/build.sh" "$E2E_WORK/debs-2" "$VERSION2" "$E2E_WORK/build" \
    > "$E2E_WORK/build-2.log" 2>&1 || { tail -n 40 "$E2E_WORK/build-2.log"; fail "rebuild failed"; }
  E2E_UPGRADE_DEB=$(ls "$E2E_WORK"/debs-2/runscope_*.deb)
  [ -z "$KEEP_DEBS" ] || cp "$E2E_UPGRADE_DEB" "$KEEP_DEBS"/
  check "$VERSION2 is newer than $VERSION1" dpkg --compare-versions "$VERSION2" gt "$VERSION1"
}

e2e_check_purged() {
  local before=$1 path leftover=""
  check "dpkg no longer knows runscope" bash -c "! dpkg-query -W -f='\${Status}' runscope 2>/dev/null | grep -q installed"
  while read -r path; do
    if [ -e "$path" ] && ! grep -qxF "$path" "$before/existing"; then leftover="$leftover $path"; fi
  done < "$before/paths"
  [ -z "$leftover" ] || fail "purge left files behind:$leftover"
  ok "every path the package installed is gone (or existed before it)"
  check "group runscope gone" bash -c "! getent group runscope"
  check "/var/lib/runscope and /etc/runscope gone" bash -c "! test -e /var/lib/runscope && ! test -e /etc/runscope"
  check "no enablement symlink or deb-systemd-helper state left" bash -c \
    "! test -e /etc/systemd/system/multi-user.target.wants/runscoped.service &&
     ! ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q runscope"
  check "no runscope cgroup folder left on the host" \
    bash -c "$(declare -f e2e_runscope_cgroups); diff <(e2e_runscope_cgroups) '$before/cgroups'"
}

# --- daemon steps (need runscoped in the package) ---

# rs [USER] ARGS...: the installed runscope CLI inside the contained systemd, as root or USER.
rs() {
  if [ "$1" = "--as" ]; then
    local user=$2; shift 2
    ct_in setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups /usr/bin/runscope "$@"
  else
    ct_in /usr/bin/runscope "$@"
  fi
}
# task_field ALLOC TASK FIELD: one field of `runscope inspect`.
# (`unit` is "SLICE/NAME.scope" for a task in a cpu partition slice: systemctl wants NAME.scope.)
task_field() {
  rs inspect "$1" "$2" | python3 -c "import json,sys; print(json.load(sys.stdin)['$3'])"
}

e2e_make_users() {
  step "throwaway users: $E2E_MEMBER (group runscope), $E2E_OTHER (not)"
  useradd --system --no-create-home --shell /usr/sbin/nologin --groups runscope "$E2E_MEMBER"
  E2E_USERS="$E2E_MEMBER"
  useradd --system --no-create-home --shell /usr/sbin/nologin "$E2E_OTHER"
  E2E_USERS="$E2E_USERS $E2E_OTHER"
}

e2e_remove_users() {
  local user
  for user in $E2E_USERS; do
    userdel "$user" || echo "e2e: could not remove user $user" >&2
  done
  E2E_USERS=""
}

e2e_daemon_start() {
  step "systemctl start runscoped"
  if ! ct_in systemctl start runscoped; then
    ct_in systemctl status --no-pager runscoped || true
    # No journald in the contained systemd: run the daemon once in the foreground for its message.
    ct_in systemctl stop runscoped || true
    echo "--- runscoped in the foreground (5 s):" >&2
    ct_in timeout 5 /usr/sbin/runscoped 2>&1 | tail -n 20 >&2 || true
    fail "systemctl start runscoped failed"
  fi
  check "runscoped is active" ct_in systemctl is-active runscoped
  ct_in systemctl status --no-pager runscoped || true
  check "systemctl status shows a status line" \
    grep -q 'StatusText=.' <<<"$(ct_in systemctl show -p StatusText runscoped)"
  echo "    info: $(ct_in systemd-analyze security runscoped 2>&1 | tail -n1) (docs/packaging.md says why)"
}

e2e_daemon_run_tasks() {
  step "runscope run / ps / stats / logs as root"
  check "run a shared task" rs run --alloc e2e --task shared -- /bin/sleep 100000
  check "run a task with --cores 1" rs run --alloc e2e --task pinned --cores 1 -- /bin/sleep 100000
  # The contained systemd has no journald, where log target "auto" sends output on a systemd
  # host: this task logs to files in the state folder, which `runscope logs` reads.
  check "run a task that writes to stdout (log target file)" \
    rs run --alloc e2e --task hello --log-target file -- /bin/sh -c 'echo hello-e2e; exec /bin/sleep 100000'
  eventually "the three tasks are running" bash -c \
    "$(declare -f rs task_field ct_in); CT_PID1=$CT_PID1;
     for t in shared pinned hello; do [ \"\$(task_field e2e \$t state)\" = running ] || exit 1; done"
  check "ps lists them" bash -c "$(declare -f rs ct_in); CT_PID1=$CT_PID1;
     out=\$(rs ps); grep -q shared <<<\"\$out\" && grep -q pinned <<<\"\$out\" && grep -q hello <<<\"\$out\""
  # The contained systemd is cgroup v2 without a cpuset controller (bound to v1 here): systemd
  # takes AllowedCPUs but the kernel does not enforce it, so the unit properties are what to check.
  check "the --cores 1 task's scope has AllowedCPUs = one CPU, the task's own, not the shared slice's" \
    bash -c "$(declare -f rs task_field ct_in); CT_PID1=$CT_PID1;
     cpus=\$(task_field e2e pinned cpus); unit=\$(task_field e2e pinned unit); unit=\${unit##*/}; pid=\$(task_field e2e pinned pid);
     [[ \$cpus =~ ^[0-9]+\$ ]] && [ \"\$(ct_in systemctl show -p AllowedCPUs --value \$unit)\" = \$cpus ] &&
     ct_in grep -qz ^RUNSCOPE_CPU_CORES=\$cpus\$ /proc/\$pid/environ &&
     shared=\$(ct_in systemctl show -p AllowedCPUs --value runscope-shared.slice) && [ -n \"\$shared\" ] &&
     python3 -c 'import sys
cpus=set()
for part in sys.argv[1].split(\",\"):
    a,_,b=part.partition(\"-\"); cpus.update(range(int(a),int(b or a)+1))
sys.exit(int(sys.argv[2]) in cpus)' \"\$shared\" \$cpus"
  check "tasks inherit no sandbox: PID 1's mount namespace, capability bound, no seccomp, NoNewPrivs 0" \
    bash -c "$(declare -f rs task_field ct_in); CT_PID1=$CT_PID1;
     pid=\$(task_field e2e shared pid);
     view() { ct_in sh -c \"readlink /proc/\$1/ns/mnt; grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/\$1/status\"; }
     diff <(view 1) <(view \$pid)"
  check "stats answers" rs stats e2e shared
  eventually "logs show the task's output" bash -c "$(declare -f rs ct_in); CT_PID1=$CT_PID1;
     rs logs e2e hello | grep -q hello-e2e"
}

e2e_daemon_access() {
  step "access: a member of group runscope may, another user may not"
  check "the member runs a task (as itself)" rs --as "$E2E_MEMBER" run --alloc e2e-m --task mine -- /bin/sleep 100000
  eventually "the member's task runs as the member" bash -c "$(declare -f rs task_field ct_in); CT_PID1=$CT_PID1;
     pid=\$(task_field e2e-m mine pid); [ \"\$(ct_in stat -c %U /proc/\$pid)\" = $E2E_MEMBER ]"
  check "the member's ps shows its task only" bash -c "$(declare -f rs ct_in); CT_PID1=$CT_PID1;
     out=\$(rs --as $E2E_MEMBER ps); grep -q mine <<<\"\$out\" && ! grep -q shared <<<\"\$out\""
  check "another user is refused" bash -c "$(declare -f rs ct_in); CT_PID1=$CT_PID1;
     ! rs --as $E2E_OTHER ps && ! rs --as $E2E_OTHER run --alloc e2e-o --task no -- /bin/true"
}

# e2e_daemon_survives WHAT CMD...: CMD (a restart, reload or upgrade) keeps every task running,
# with the same pid, and listed by the daemon afterwards.
e2e_daemon_survives() {
  local what=$1; shift
  step "$what with tasks running"
  local t pids=""
  for t in e2e/shared e2e/pinned e2e/hello e2e-m/mine; do
    pids="$pids ${t}=$(task_field "${t%/*}" "${t#*/}" pid)"
  done
  "$@" || fail "$what: $* failed"
  eventually "runscoped active after $what" ct_in systemctl is-active runscoped
  local entry
  for entry in $pids; do
    t=${entry%=*}
    eventually "$t still running, same pid ${entry#*=}, after $what" bash -c \
      "$(declare -f rs task_field ct_in); CT_PID1=$CT_PID1;
       [ \"\$(task_field ${t%/*} ${t#*/} state)\" = running ] &&
       [ \"\$(task_field ${t%/*} ${t#*/} pid)\" = ${entry#*=} ] && ct_in kill -0 ${entry#*=} &&
       unit=\$(task_field ${t%/*} ${t#*/} unit) && ct_in systemctl is-active \"\${unit##*/}\" &&
       rs ps | grep -qw ${t#*/}"
  done
}

e2e_daemon_stop_tasks() {
  step "stop the tasks"
  local t
  for t in e2e/shared e2e/pinned e2e/hello e2e-m/mine; do
    check "stop $t" rs stop "${t%/*}" "${t#*/}"
  done
  # The supervisors' scope stays, kept by its anchor for the next tasks; no shim's cgroup may.
  if ! eventually_quiet bash -c "$(declare -f ct_in); CT_PID1=$CT_PID1;
     [ -z \"\$(ct_in find /sys/fs/cgroup/runscope.slice -name '*.scope' ! -name '*x2dsupervisors.scope' 2>/dev/null)\" ] &&
     [ -z \"\$(ct_in find /sys/fs/cgroup/runscope.slice -path '*x2dsupervisors.scope/*' -type d 2>/dev/null)\" ]"; then
    echo "e2e: scopes still there:" >&2
    ct_in find /sys/fs/cgroup/runscope.slice -name '*.scope' >&2 || true
    ct_in systemctl list-units --all --no-pager 'e2e*' >&2 || true
    rs ps >&2 || true
    ct_in journalctl --no-pager -n 60 -u runscoped >&2 || true
    fail "no task scope left under runscope.slice (not within ${E2E_TASK_TIMEOUT}s)"
  fi
  ok "no task scope left under runscope.slice"
}


e2e_cleanup() {
  local status=$?
  set +e
  trap - EXIT
  # The namespace first: userdel refuses a user whose task is still running in it.
  contained_teardown
  e2e_remove_users
  if [ "$E2E_INSTALLED" -eq 1 ]; then
    echo "e2e: cleanup: purging runscope"
    dpkg --purge runscope >/dev/null
  fi
  rm -rf "$E2E_WORK"
  [ "$status" -eq 0 ] || echo "=== e2e: FAILED (exit $status); everything it made is removed" >&2
  exit "$status"
}

# Without runscoped: the INSTALLED unit, with only ExecStart replaced by a drop-in, starts a
# stand-in under its real sandbox that notifies READY, STATUS and WATCHDOG from its main process
# (NotifyAccess=main), says "reloaded" on SIGHUP, and leaves a child behind, which must survive
# reload, restart and stop (KillMode=process).
e2e_unit_standin() {
  step "the installed runscoped.service with a stand-in ExecStart (drop-in)"
  local dropin=$CT_DIR/units/runscoped.service.d
  mkdir -p "$dropin"
  cat > "$CT_DIR/stand-in.py" <<'PY'
import os, signal, socket, subprocess, time
child = subprocess.Popen(["/bin/sleep", "100000"], start_new_session=True)
with open("/run/e2e-child", "w") as f:
    f.write(str(child.pid))
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\0" + address[1:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def notify(message):
    sock.sendto(message.encode(), address)
signal.signal(signal.SIGHUP, lambda *_: notify("STATUS=reloaded"))
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
notify("READY=1\nSTATUS=e2e stand-in")
while True:
    notify("WATCHDOG=1")
    time.sleep(1)
PY
  printf '[Service]\nExecStart=\nExecStart=/usr/bin/python3 %s\n' "$CT_DIR/stand-in.py" > "$dropin/e2e.conf"
  ct_in systemctl daemon-reload
  ct_in systemctl start runscoped || { ct_in systemctl status --no-pager runscoped; fail "stand-in did not start"; }
  local show="$(declare -f ct_in); CT_PID1=$CT_PID1; ct_in systemctl show --value"
  check "active under the packaged sandbox, with its status line" \
    bash -c "[ \"\$($show -p StatusText runscoped)\" = 'e2e stand-in' ]"
  local child main
  child=$(ct_in cat /run/e2e-child)
  main=$(ct_in systemctl show -p MainPID --value runscoped)
  ct_in systemctl reload runscoped
  eventually "reload sent SIGHUP to the main process (it says so)" \
    bash -c "[ \"\$($show -p StatusText runscoped)\" = reloaded ]"
  check "same main process after reload" bash -c "[ \"\$($show -p MainPID runscoped)\" = $main ]"
  check "the child it left survived reload" ct_in kill -0 "$child"
  ct_in systemctl restart runscoped
  check "active after restart, a new main process" bash -c \
    "$show -p ActiveState runscoped | grep -qx active && [ \"\$($show -p MainPID runscoped)\" != $main ]"
  check "the child it left survived restart (KillMode=process)" ct_in kill -0 "$child"
  ct_in systemctl stop runscoped
  check "the child it left survived stop" ct_in kill -0 "$child"
  ct_in kill "$child" || true
  rm -rf "$dropin"
  ct_in systemctl daemon-reload
}
