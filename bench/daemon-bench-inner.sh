#!/bin/bash
# One side of bench/daemon-bench.sh: a private bus, a real runscoped on it, then bench/daemon_bench
# against it; on the systemd side also the baselines (systemd-run --scope in a loop, and
# systemd_bench's bare StartTransientUnit ceiling). Prints `key=value` lines; cleans up after itself.
# Usage: daemon-bench-inner.sh systemd|cgroupfs BUILD_DIR [STARTS IN_FLIGHT RSS_TASKS SCOPE_RUNS]
# (run by daemon-bench.sh, as root)
set -euo pipefail
MODE=$1
BUILD_DIR=$(realpath "$2")
STARTS=${3:-500}
IN_FLIGHT=${4:-32}
RSS_TASKS=${5:-1000}
SCOPE_RUNS=${6:-100}
PARENT="runscope-bench-$$"
WORK=$(mktemp -d /tmp/runscope-daemon-bench.XXXXXX)
chmod 0755 "$WORK"  # the hostile member (its own uid) reaches the bus socket
HOSTILE_UID=${DAEMON_BENCH_HOSTILE_UID:-65534}  # nobody: the bus must be able to look it up
SAMPLES=${DAEMON_BENCH_SAMPLES:-400}
BUS_PID="" DAEMON_PID=""

cleanup() {
  set +e
  [ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  [ -n "$BUS_PID" ] && kill -TERM "$BUS_PID" 2>/dev/null && wait "$BUS_PID" 2>/dev/null
  if [ "$MODE" = systemd ]; then
    systemctl stop "$PARENT.slice" >/dev/null 2>&1
  else
    # The relative v1 parent under our own cgroup of each hierarchy (memory: /process_api/...).
    local line controllers own
    while IFS=: read -r _ controllers own; do
      case "$controllers" in ''|name=*) continue ;; esac
      [ -d "/sys/fs/cgroup/$controllers$own/$PARENT" ] &&
        find "/sys/fs/cgroup/$controllers$own/$PARENT" -depth -type d -exec rmdir {} \; 2>/dev/null
    done < /proc/self/cgroup
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$WORK/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
dbus-daemon --config-file="$WORK/bus.conf" --nofork --nopidfile 2>"$WORK/bus.log" &
BUS_PID=$!
BUS="unix:path=$WORK/bus.sock"
for _ in $(seq 300); do [ -S "$WORK/bus.sock" ] && break; sleep 0.1; done

parent=$PARENT
[ "$MODE" = systemd ] && parent="$PARENT.slice"
printf '[cgroups]\nmanager = "%s"\nparent = "%s"\n[daemon]\nstate_dir = "%s"\nlog_level = "warn"\n' \
  "$MODE" "$parent" "$WORK/state" > "$WORK/runscope.toml"
"$BUILD_DIR/src/runscoped" --bus "$BUS" --config "$WORK/runscope.toml" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 300); do
  "$BUILD_DIR/src/runscope" --bus "$BUS" ps >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; exit 1; }
  sleep 0.1
done
sleep 1  # let it settle before the idle RSS
"$BUILD_DIR/bench/daemon_bench" --bus "$BUS" --daemon-pid "$DAEMON_PID" --shim "$BUILD_DIR/src/runscope-shim" \
  --starts "$STARTS" --in-flight "$IN_FLIGHT" --rss-tasks "$RSS_TASKS" --prefix "$MODE" \
  --hostile-uid "$HOSTILE_UID" --samples "$SAMPLES"
grep -i "error\|critical" "$WORK/daemon.log" | head -5 >&2 || true
# The floor a start is compared with, same run, same number in flight (bench/start_floor.cpp).
if [ "$MODE" = systemd ]; then
  "$BUILD_DIR/bench/start_floor" systemd "$STARTS" "$IN_FLIGHT" "$PARENT.slice"
else
  "$BUILD_DIR/bench/start_floor" cgroupfs "$STARTS" "$IN_FLIGHT" "$PARENT-floor" "$WORK/floor-state"
  exit 0
fi

# Baselines, same run, same systemd.
t0=$(date +%s.%N)
for _ in $(seq "$SCOPE_RUNS"); do systemd-run --quiet --scope --slice="$PARENT.slice" /bin/true; done
t1=$(date +%s.%N)
echo "systemd_run_scope_runs=$SCOPE_RUNS"
awk -v a="$t0" -v b="$t1" -v n="$SCOPE_RUNS" 'BEGIN { printf "systemd_run_scope_per_s=%.3f\n", n / (b - a) }'
"$BUILD_DIR/bench/systemd_bench" > "$WORK/systemd_bench.txt"
cat "$WORK/systemd_bench.txt" >&2
awk '/^bare StartTransientUnit \(ceiling\)/ { printf "bare_start_transient_unit_per_s=%s\n", $NF }
     /^runscope SystemdBackend/ { printf "systemd_backend_per_s=%s\n", $NF }' "$WORK/systemd_bench.txt"
