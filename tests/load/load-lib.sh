# Steps of tests/load/run-load.sh. Sourced there, and inside the contained systemd by the service
# that runs load_inner there (so it must not depend on the caller's variables).

LOAD_LIB_FILE=$(realpath "${BASH_SOURCE[0]}")
LOAD_TIMEOUT=${LOAD_TIMEOUT:-60}  # seconds for the daemon to come up, or what it ended to vanish
LOAD_INFLIGHT=${LOAD_INFLIGHT:-32}  # calls pending at once: well below the bus's cap of 128 replies
LOAD_V1_CONTROLLERS="cpuset cpu cpuacct memory pids freezer"

# A failure also ends this run's daemon (its tasks stay for the caller's teardown to kill) and bus.
load_fail() {
  echo "load: FAILED: $*" >&2
  [ -n "${LOAD_DAEMON_PID:-}" ] && kill -TERM "$LOAD_DAEMON_PID" 2>/dev/null && wait "$LOAD_DAEMON_PID" 2>/dev/null
  [ -n "${LOAD_BUS_PID:-}" ] && kill -TERM "$LOAD_BUS_PID" 2>/dev/null
  exit 1
}

# Host-wide limits are only checked: pid_max and threads-max bound every process on the machine,
# and other people's tests run beside this one. Each task is two processes (shim + task).
load_check_host_limits() {
  local n=$1 pid_max threads_max live need avail_kb
  pid_max=$(cat /proc/sys/kernel/pid_max)
  threads_max=$(cat /proc/sys/kernel/threads-max)
  live=$(awk '{split($4, a, "/"); print a[2]}' /proc/loadavg)
  need=$((2 * n + 512))
  echo "    limits: pid_max=$pid_max threads-max=$threads_max live threads=$live need about $need more;" \
       "nofile hard=$(ulimit -Hn) (the daemon holds one fd per running task)"
  [ $((live + need)) -lt "$pid_max" ] || load_fail "pid_max $pid_max leaves no room for $need more processes"
  [ $((live + need)) -lt "$threads_max" ] || load_fail "threads-max $threads_max is too low for $need more"
  [ $((n + 2048)) -le "$(cat /proc/sys/fs/nr_open)" ] ||
    load_fail "fs.nr_open $(cat /proc/sys/fs/nr_open) is below the daemon's fd per task"
  avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  [ "$avail_kb" -gt $((n * 512)) ] || load_fail "MemAvailable ${avail_kb} kB: less than 512 kB per task"
}

# The v1 folders of a relative parent: below OUR cgroup in each controller (memory is not at the root).
load_v1_bases() {
  local parent=$1 c own
  for c in $LOAD_V1_CONTROLLERS; do
    [ -d "/sys/fs/cgroup/$c" ] || continue
    own=$(awk -F: -v c="$c" '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3}' /proc/self/cgroup)
    echo "/sys/fs/cgroup/$c${own%/}/$parent"
  done
}

# No task cgroup left under the parent (the cpuset partitions `shared` and `reserved` may stay
# while the parent exists; they hold no process).
load_v1_check_empty() {
  local parent=$1 base left procs
  for base in $(load_v1_bases "$parent"); do
    left=$(find "$base" -mindepth 1 -type d ! -name shared ! -name reserved 2>/dev/null | wc -l)
    [ "$left" -eq 0 ] || load_fail "$left task cgroup(s) left under $base"
    procs=$(find "$base" -name cgroup.procs -exec cat {} + 2>/dev/null | wc -l)
    [ "$procs" -eq 0 ] || load_fail "$procs process(es) left in $base"
  done
  echo "    ok: no task cgroup or process left under the parent in any v1 controller"
}

# Teardown: SIGKILL what a failed run left under the parent (by pid), then rmdir depth-first.
load_v1_remove_parent() {
  local parent=$1 base pid round
  for round in $(seq 1 200); do
    local any=0
    for base in $(load_v1_bases "$parent"); do
      for pid in $(find "$base" -name cgroup.procs -exec cat {} + 2>/dev/null); do any=1; kill -9 "$pid" 2>/dev/null; done
    done
    [ "$any" -eq 0 ] && break
    sleep 0.05
  done
  for base in $(load_v1_bases "$parent"); do
    [ -d "$base" ] && find "$base" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$base" ] && echo "load: could not remove $base" >&2
  done
  return 0
}

load_bin() {  # load_bin BUILD NAME: a binary of the build, wherever the build puts it
  local f
  for f in "$1/src/$2" "$1/bench/$2" "$1/$2"; do [ -x "$f" ] && { echo "$f"; return; }; done
  load_fail "$2 not found in $1"
}

# Pids of this run's shims (by their binary's path and task folder) and tasks (by the unique sleep
# argument), with pgrep: scanning /proc from the shell is too slow with 20,000 processes.
load_pids_of() {
  local shim=$1 marker=$2 work=$3
  pgrep -f -- "^$shim $work/" || true  # the shim's first argument is its task folder, ours
  pgrep -f -- "$marker" || true
}

# Run by load_client while all N tasks are up: `runscope ps --json` into the work folder, and the
# RSS of up to 50 shims (VmRSS and RssAnon, kB; the median is printed as a `shim ...` line).
load_at_peak() {
  local cli=$1 bus=$2 work=$3 shim=$4 pid
  "$cli" --bus "$bus" ps --json > "$work/ps.json" || return 1
  for pid in $(pgrep -f -- "^$shim $work/" | head -n 50); do
    awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} END {print r, a}' "/proc/$pid/status" 2>/dev/null
  done | sort -n | awk '{r[NR] = $1; a[NR] = $2} END {
    if (NR == 0) exit 1
    m = int((NR + 1) / 2)
    printf "shim sampled=%d rss_kb_median=%d rss_anon_kb_median=%d rss_kb_max=%d\n", NR, r[m], a[m], r[NR]
  }'
}

load_start_bus() {  # sets LOAD_BUS_PID, LOAD_BUS
  local work=$1
  cat > "$work/bus.conf" <<'CONF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
  sed -i "s|SOCKET|$work/bus.sock|" "$work/bus.conf"
  dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile --print-address=3 3> "$work/bus.addr" \
    > "$work/dbus.log" 2>&1 &
  LOAD_BUS_PID=$!
  local i
  for i in $(seq 1 200); do [ -s "$work/bus.addr" ] && break; sleep 0.05; done
  LOAD_BUS=$(head -n1 "$work/bus.addr")
  [ -n "$LOAD_BUS" ] || load_fail "the private dbus-daemon gave no address"
}

load_start_daemon() {  # sets LOAD_DAEMON_PID
  local build=$1 manager=$2 parent=$3 work=$4 cli=$5 i
  [ "$manager" = systemd ] && parent="$parent.slice"
  printf '[cgroups]\nmanager = "%s"\nparent = "%s"\n[daemon]\nstate_dir = "%s"\n' \
    "$manager" "$parent" "$work/state" > "$work/runscope.toml"
  "$(load_bin "$build" runscoped)" --bus "$LOAD_BUS" --config "$work/runscope.toml" > "$work/daemon.log" 2>&1 &
  LOAD_DAEMON_PID=$!
  for i in $(seq 1 $((LOAD_TIMEOUT * 10))); do
    "$cli" --bus "$LOAD_BUS" ps > /dev/null 2>&1 && return 0
    kill -0 "$LOAD_DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$work/daemon.log" "$work/dbus.log" >&2
  load_fail "runscoped did not come up"
}

# The whole run on one path, in the current namespace: bus, daemon, N tasks, checks, teardown.
load_inner() {
  local build=$1 manager=$2 parent=$3 n=$4 work=$5
  local cli shim alloc="load$$" marker="3600.$$" i
  cli=$(load_bin "$build" runscope)
  shim=$(load_bin "$build" runscope-shim)
  mkdir -p "$work/state"
  # The daemon holds one fd per running task (the shim's pidfd; cgroups are closed while tasks
  # run): the hard limit must leave room, and the soft one is left at the usual 1024, so the run
  # also shows that runscoped raises its own soft limit (as it must under systemd's default).
  local want=$((n + 2048))
  if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want" ]; then
    ulimit -Hn "$want" || load_fail "cannot raise the hard RLIMIT_NOFILE to $want"
  fi
  ulimit -Sn 1024
  load_start_bus "$work"
  load_start_daemon "$build" "$manager" "$parent" "$work" "$cli"
  echo "    runscoped pid $LOAD_DAEMON_PID ($manager), its fd limit" \
       "$(awk '/Max open files/ {print $4 " soft, " $5 " hard"}' "/proc/$LOAD_DAEMON_PID/limits"), bus $LOAD_BUS"
  "$(load_bin "$build" load_client)" --bus "$LOAD_BUS" --daemon-pid "$LOAD_DAEMON_PID" --n "$n" \
    --inflight "$LOAD_INFLIGHT" --alloc "$alloc" \
    --then "bash -c \"source '$LOAD_LIB_FILE' && load_at_peak '$cli' '$LOAD_BUS' '$work' '$shim'\"" \
    -- /bin/sleep "$marker" ||
    { tail -n 20 "$work/daemon.log" >&2; load_fail "the load client reported failures"; }
  local shown
  shown=$(python3 -c "import json,sys; print(sum(1 for t in json.load(open(sys.argv[1])) if t['alloc'] == sys.argv[2] and t['state'] == 'running'))" "$work/ps.json" "$alloc")
  [ "$shown" -eq "$n" ] || load_fail "runscope ps showed $shown of $n tasks running"
  echo "    ok: runscope ps listed all $n tasks running"
  [ -z "$(ls -A "$work/state/tasks" 2>/dev/null)" ] || load_fail "state entries left: $(ls "$work/state/tasks" | head -3)"
  echo "    ok: no state entry left in $work/state/tasks"
  kill -TERM "$LOAD_DAEMON_PID"
  wait "$LOAD_DAEMON_PID" || load_fail "runscoped exited $? on SIGTERM"
  kill -TERM "$LOAD_BUS_PID"; wait "$LOAD_BUS_PID" 2>/dev/null || true
  local left=""
  for i in $(seq 1 $((LOAD_TIMEOUT * 10))); do
    left=$(load_pids_of "$shim" "sleep $marker" "$work")
    [ -z "$left" ] && break
    sleep 0.1
  done
  [ -z "$left" ] || load_fail "shim or task processes left: $(echo $left | head -c 200)"
  echo "    ok: no shim or task process left"
}
