#!/bin/bash
# The daemon bench (issue 5), one command, as root: boots the contained systemd
# (tests/systemd/contained-lib.sh) and runs bench/daemon-bench-inner.sh inside it as a service
# (a real runscoped on the systemd path, with the systemd-run and bare StartTransientUnit baselines
# of the same run), then the same RSS figures on the host's cgroupfs path. Prints a table with
# ratios, then one `key=value` line per figure (what bench/run-all collects).
# Usage: bench/daemon-bench.sh [BUILD_DIR]   (default: build; RelWithDebInfo with benches)
# Knobs: DAEMON_BENCH_STARTS (500), DAEMON_BENCH_IN_FLIGHT (32), DAEMON_BENCH_RSS_TASKS (1000),
#        DAEMON_BENCH_SCOPE_RUNS (100), DAEMON_BENCH_HOST=0 skips the cgroupfs side,
#        DAEMON_BENCH_SAMPLES (400 root ListTasks, a quarter as many StartTask, idle and under a
#        hostile member's load), DAEMON_BENCH_HOSTILE_UID (65534).
set -euo pipefail
ROOT=$(dirname "$(realpath "$0")")/..
BUILD_DIR=$(realpath "${1:-$ROOT/build}")
for bin in src/runscoped src/runscope src/runscope-shim bench/daemon_bench bench/systemd_bench bench/start_floor; do
  [ -x "$BUILD_DIR/$bin" ] || { echo "$BUILD_DIR/$bin: not built" >&2; exit 2; }
done
INNER="$ROOT/bench/daemon-bench-inner.sh"
KV=$(mktemp /tmp/runscope-daemon-bench-kv.XXXXXX)
source "$ROOT/tests/systemd/contained-lib.sh"
trap 'contained_teardown; rm -f "$KV"' EXIT
trap 'exit 130' INT TERM

contained_boot
KNOBS=("${DAEMON_BENCH_STARTS:-500}" "${DAEMON_BENCH_IN_FLIGHT:-32}" "${DAEMON_BENCH_RSS_TASKS:-1000}"
       "${DAEMON_BENCH_SCOPE_RUNS:-100}")
timeout --kill-after=10 900 bash -c "$(declare -f ct_in contained_run); CT_PID1=$CT_PID1; CT_LIB_DIR=$CT_LIB_DIR; \
  contained_run \"\$@\"" _ "$INNER" systemd "$BUILD_DIR" "${KNOBS[@]}" | tee -a "$KV" >&2 &
wait $!
contained_teardown
if [ "${DAEMON_BENCH_HOST:-1}" != 0 ]; then
  timeout --kill-after=10 600 "$INNER" cgroupfs "$BUILD_DIR" "${KNOBS[0]}" "${KNOBS[1]}" "${KNOBS[2]}" 0 | tee -a "$KV" >&2
fi

awk -F= '/^[a-z][a-z0-9_]*=[-0-9.]+$/ { v[$1] = $2 }
function row(name, value, unit, ratio) { printf "%-46s %12s %-8s %s\n", name, value, unit, ratio }
function r(a, b) { return (b > 0) ? sprintf("%.2f", a / b) : "-" }
END {
  printf "\nTable: runscoped (%d starts of sleep 600, %d in flight; %d tasks of sleep 600)\n",
         v["systemd_starts"], v["systemd_starts_in_flight"], v["systemd_rss_tasks"]
  row("", "value", "unit", "ratio")
  row("starts through runscoped (systemd path)", sprintf("%.1f", v["systemd_starts_per_s"]), "tasks/s", "1.00")
  row("bare StartTransientUnit, same in flight", sprintf("%.1f", v["bare_systemd_starts_per_s"]), "scopes/s",
      "runscoped/bare " r(v["systemd_starts_per_s"], v["bare_systemd_starts_per_s"]) " (target >= 0.6)")
  row("bare StartTransientUnit ceiling (64 in flight)", v["bare_start_transient_unit_per_s"], "scopes/s",
      "runscoped/ceiling " r(v["systemd_starts_per_s"], v["bare_start_transient_unit_per_s"]))
  row("systemd-run --scope /bin/true loop", sprintf("%.1f", v["systemd_run_scope_per_s"]), "tasks/s",
      "runscoped/systemd-run " r(v["systemd_starts_per_s"], v["systemd_run_scope_per_s"]))
  row("daemon RSS idle (systemd)", sprintf("%.1f", v["systemd_rss_idle_kib"] / 1024), "MiB", "target < 64")
  row("daemon RSS, 1000 tasks (systemd)", sprintf("%.1f", v["systemd_rss_busy_kib"] / 1024), "MiB",
      "of 64 MiB " r(v["systemd_rss_busy_kib"] / 1024, 64))
  row("daemon RSS after stopping them (systemd)", sprintf("%.1f", v["systemd_rss_after_kib"] / 1024), "MiB", "")
  row("shim RSS avg / max (systemd)", sprintf("%.0f / %.0f", v["systemd_shim_rss_avg_kib"], v["systemd_shim_rss_max_kib"]),
      "KiB", "of 1 MiB " r(v["systemd_shim_rss_max_kib"], 1024))
  row("shim PSS avg (systemd)", sprintf("%.0f", v["systemd_shim_pss_avg_kib"]), "KiB", "")
  row("1000 tasks: start / stop+destroy (systemd)",
      sprintf("%.1f / %.1f", v["systemd_rss_tasks_start_seconds"], v["systemd_rss_tasks_stop_seconds"]), "s", "")
  if ("cgroupfs_starts_per_s" in v) {
    row("starts through runscoped (cgroupfs v1)", sprintf("%.1f", v["cgroupfs_starts_per_s"]), "tasks/s", "1.00")
    row("bare loop: cgroup, fork+exec shim+task, syncfs/batch", sprintf("%.1f", v["bare_cgroupfs_starts_per_s"]),
        "starts/s", "runscoped/bare " r(v["cgroupfs_starts_per_s"], v["bare_cgroupfs_starts_per_s"]) " (target >= 0.6)")
  }
  split("systemd cgroupfs", paths, " ")
  for (p = 1; p <= 2; p++) {
    if (!((paths[p] "_idle_list_p50_ms") in v)) continue
    row("root ListTasks p50/p99 idle (" paths[p] ")",
        sprintf("%.2f / %.2f", v[paths[p] "_idle_list_p50_ms"], v[paths[p] "_idle_list_p99_ms"]), "ms", "")
    row("  ... under a member with 8 slow stops + flood",
        sprintf("%.2f / %.2f", v[paths[p] "_hostile_list_p50_ms"], v[paths[p] "_hostile_list_p99_ms"]), "ms",
        "p99 " r(v[paths[p] "_hostile_list_p99_ms"], v[paths[p] "_idle_list_p99_ms"]) "x idle")
    row("root StartTask p50/p99 idle (" paths[p] ")",
        sprintf("%.2f / %.2f", v[paths[p] "_idle_start_p50_ms"], v[paths[p] "_idle_start_p99_ms"]), "ms", "")
    row("  ... under a member with 8 slow stops + flood",
        sprintf("%.2f / %.2f", v[paths[p] "_hostile_start_p50_ms"], v[paths[p] "_hostile_start_p99_ms"]), "ms",
        "p99 " r(v[paths[p] "_hostile_start_p99_ms"], v[paths[p] "_idle_start_p99_ms"]) "x idle")
    row("  the flood, answered", sprintf("%.0f", v[paths[p] "_hostile_flood_calls_per_s"]), "calls/s", "")
  }
  if ("cgroupfs_rss_idle_kib" in v) {
    row("daemon RSS idle (cgroupfs v1)", sprintf("%.1f", v["cgroupfs_rss_idle_kib"] / 1024), "MiB", "target < 64")
    row("daemon RSS, 1000 tasks (cgroupfs v1)", sprintf("%.1f", v["cgroupfs_rss_busy_kib"] / 1024), "MiB",
        "of 64 MiB " r(v["cgroupfs_rss_busy_kib"] / 1024, 64))
    row("shim RSS avg / max (cgroupfs v1)",
        sprintf("%.0f / %.0f", v["cgroupfs_shim_rss_avg_kib"], v["cgroupfs_shim_rss_max_kib"]), "KiB",
        "of 1 MiB " r(v["cgroupfs_shim_rss_max_kib"], 1024))
    row("1000 tasks: start / stop+destroy (cgroupfs v1)",
        sprintf("%.1f / %.1f", v["cgroupfs_rss_tasks_start_seconds"], v["cgroupfs_rss_tasks_stop_seconds"]), "s", "")
  }
  print ""
}' "$KV"
grep -E '^[a-z][a-z0-9_]*=[-0-9.]+$' "$KV" | sort -t= -k1,1 -u
