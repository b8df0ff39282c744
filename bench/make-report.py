#!/usr/bin/env python3
"""Writes REPORT.md and report.png from the raw outputs bench/run-all.sh collected.

Usage: make-report.py RAW_DIR OUT_DIR. RAW_DIR holds NAME.txt (a bench's output) and NAME.status
(`rc=.. seconds=..`) per step, and machine.txt (key=value). Figures come from the benches'
machine-readable lines (`start ...`, `kill ...`, `cpuset ...`, `systemd ...`, `exec ...`, `load ...`,
`shim ...` followed by key=value pairs; daemon-bench's bare `key=value` lines).
"""
import os
import re
import shutil
import subprocess
import sys

PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)")


def num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read(raw, name):
    path = os.path.join(raw, name + ".txt")
    return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else None


def status(raw, name):
    path = os.path.join(raw, name + ".status")
    if not os.path.exists(path):
        return None
    return dict(PAIR.findall(open(path).read()))


def tagged(text, tag):
    """Every `TAG k=v k=v` line of TEXT as a dict."""
    out = []
    for line in (text or "").splitlines():
        if line.startswith(tag + " "):
            out.append({k: num(v) if num(v) is not None else v for k, v in PAIR.findall(line)})
    return out


def bare_pairs(text):
    out = {}
    for line in (text or "").splitlines():
        m = re.fullmatch(r"([a-z][a-z0-9_]*)=(-?[0-9.]+)", line.strip())
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


class Report:
    def __init__(self):
        self.rows = []

    def add(self, issue, figure, value, baseline, ratio, target, met):
        self.rows.append((issue, figure, value, baseline, ratio, target, met))

    def missing(self, issue, figure, why):
        self.rows.append((issue, figure, "not measured", why, "-", "-", "-"))


def verdict(ok):
    return "met" if ok else "NOT met"


def start_rows(rep, raw, running):
    points = []
    for n in running:
        lines = tagged(read(raw, "start-%d" % n), "start")
        if not lines:
            rep.missing("2", "start p50, %d tasks running" % n, "start_bench failed (raw output below)")
            continue
        s = lines[-1]
        ratio = s["status_p50_ms"] / s["bare_p50_ms"]
        rep.add("2", "start->exit status p50, %d tasks running (cgroupfs)" % n, "%.3f ms" % s["status_p50_ms"],
                "bare fork+exec+wait %.3f ms" % s["bare_p50_ms"], "%.2fx" % ratio, "<= 1.5x", verdict(ratio <= 1.5))
        rep.add("2", "start->cgroup removed p50, %d running" % n, "%.3f ms" % s["removed_p50_ms"],
                "bare %.3f ms" % s["bare_p50_ms"], "%.2fx" % (s["removed_p50_ms"] / s["bare_p50_ms"]),
                "(reported)", "-")
        points.append((n, s["bare_p50_ms"], s["status_p50_ms"], s["removed_p50_ms"]))
    return points


def kill_rows(rep, raw):
    lines = {k["method"]: k for k in tagged(read(raw, "kill"), "kill")}
    base = lines.get("v2_cgroup_kill")
    names = {"v2_cgroup_kill": "v2 cgroup.kill", "v2_freeze": "v2 freeze+SIGKILL+thaw",
             "v1_freeze": "v1 freezer freeze+SIGKILL+thaw"}
    if not lines:
        rep.missing("2", "kill a 1000-process tree", "kill_bench failed")
    for key, label in names.items():
        if key not in lines:
            continue
        k = lines[key]
        baseline = "v2 cgroup.kill %.1f ms" % base["median_ms"] if base and key != "v2_cgroup_kill" else "-"
        ratio = "%.2fx" % (k["median_ms"] / base["median_ms"]) if base and key != "v2_cgroup_kill" else "-"
        rep.add("2", "empty a 1000-process tree: " + label, "%.1f ms" % k["median_ms"], baseline, ratio,
                "(compared; no number set)", "-")


def cpuset_rows(rep, raw):
    rows = tagged(read(raw, "cpuset"), "cpuset")
    if not rows:
        rep.missing("4", "reservation change cost", "cpuset_bench failed or skipped")
        return []
    first, last = rows[0], rows[-1]
    flat = last["ours_us"] / first["ours_us"]
    rep.add("4", "one reservation change, N=%d vs N=%d" % (last["n"], first["n"]), "%.1f us vs %.1f us" % (
        last["ours_us"], first["ours_us"]), "-", "%.2fx" % flat, "<= 1.5x (flat in N)", verdict(flat <= 1.5))
    if "floor_us" in first:
        # Every change writes the shared partition once; that one write updates every process's
        # affinity in the kernel. The bare write, timed in the same run, is the floor of any design.
        floor = last["floor_us"] / first["floor_us"]
        own = last["own_us"] / first["own_us"] if first["own_us"] > 0 else float("inf")
        rep.add("4", "kernel floor: one bare cpuset.cpus write, N=%d vs N=%d" % (last["n"], first["n"]),
                "%.1f us vs %.1f us" % (last["floor_us"], first["floor_us"]), "-", "%.2fx" % floor,
                "(the kernel's; compared)", "-")
        rep.add("4", "runscope's own share (change - floor), N=%d vs N=%d" % (last["n"], first["n"]),
                "%.1f us vs %.1f us" % (last["own_us"], first["own_us"]), "-", "%.2fx" % own, "<= 1.5x (flat in N)",
                verdict(own <= 1.5))
    rep.add("4", "one reservation change at N=%d" % last["n"], "%.1f us, %.0f files" % (last["ours_us"], last["ours_files"]),
            "per-task rewrite %.1f us, %.0f files" % (last["ref_us"], last["ref_files"]),
            "%.1fx cheaper" % last["speedup"], ">= 50x cheaper", verdict(last["speedup"] >= 50))
    return [(r["n"], r["ours_us"], r["ref_us"], r.get("floor_us", r["ours_us"])) for r in rows]


def systemd_rows(rep, raw):
    lines = tagged(read(raw, "systemd"), "systemd")
    if not lines:
        rep.missing("3", "systemd path latency and throughput", "systemd-bench.sh failed")
        return
    s = lines[-1]
    rep.add("3", "one task start->exit p50 (contained systemd %s)" % s["version"], "%.2f ms" % s["ours_p50_ms"],
            "systemd-run --scope true %.2f ms" % s["systemd_run_p50_ms"], "%.2fx" % s["latency_ratio"], "<= 0.4x",
            verdict(s["latency_ratio"] <= 0.4))
    rep.add("3", "%d starts, %d in flight" % (s["tasks"], s["inflight"]), "%.0f scopes/s" % s["ours_per_s"],
            "bare StartTransientUnit %.0f/s" % s["ceiling_per_s"], "%.2fx" % s["throughput_ratio"], ">= 0.6x",
            verdict(s["throughput_ratio"] >= 0.6))


def exec_rows(rep, raw, start_points):
    """Issue 13 point 4: `runscope exec -- true`, CLI against CLI (bench/exec-bench.sh)."""
    if read(raw, "exec") is None:
        return
    cases = {c["case"]: c for c in tagged(read(raw, "exec"), "exec")}
    # exec against systemd-run on the systemd path: (exec's case, systemd-run's case, the row's label).
    for ours_key, base_key, label in (
            ("exec_systemd", "systemd_run",
             "`runscope exec -- true` p50 per invocation, systemd path (contained, each after a 50 ms pause)"),
            ("exec_systemd_warm", "systemd_run_warm",
             "the same, the kernel's first-migration wait (same for both) taken beforehand, untimed"),
            ("exec_systemd_loop", "systemd_run_loop", "the same as shell loops (10 in a row), systemd path")):
        if ours_key in cases and base_key in cases:
            ours, base = cases[ours_key], cases[base_key]
            r = ours["p50_ms"] / base["p50_ms"]
            rep.add("13", label, "%.2f ms" % ours["p50_ms"], "`systemd-run --scope true` %.2f ms" % base["p50_ms"],
                    "%.2fx" % r, "<= 1.0x", verdict(r <= 1.0))
        elif ours_key == "exec_systemd":
            rep.missing("13", "runscope exec vs systemd-run (systemd path)", "exec-bench.sh failed (raw output below)")
    if "bare" in cases and "exec_cgroupfs" in cases:
        bare = cases["bare"]
        for key, label in (("exec_cgroupfs", "`runscope exec -- true` p50 per invocation, cgroupfs v1"),
                           ("exec_nocgroups", "`runscope exec --no-cgroups -- true` (the CLI process alone)")):
            if key in cases:
                rep.add("13", label, "%.2f ms" % cases[key]["p50_ms"], "bare fork+exec+wait %.2f ms" % bare["p50_ms"],
                        "%.2fx" % (cases[key]["p50_ms"] / bare["p50_ms"]), "(reported: a CLI is a process of its own)", "-")
    for n, bare_ms, status_ms, _ in start_points:
        if n == 0:
            r = status_ms / bare_ms
            rep.add("13", "exec's runner on cgroupfs: start->exit status p50 (start_bench, as issue 2)",
                    "%.3f ms" % status_ms, "bare fork+exec+wait %.3f ms" % bare_ms, "%.2fx" % r, "<= 1.5x",
                    verdict(r <= 1.5))


def daemon_rows(rep, raw):
    d = bare_pairs(read(raw, "daemon"))
    if read(raw, "daemon") is None:
        return False
    if not d:
        rep.missing("5", "daemon bench", "daemon-bench.sh failed (raw output below)")
        return False
    inflight = d.get("systemd_starts_in_flight", d.get("cgroupfs_starts_in_flight", 0))
    if "systemd_starts_per_s" in d and "bare_systemd_starts_per_s" in d:
        r = d["systemd_starts_per_s"] / d["bare_systemd_starts_per_s"]
        rep.add("11", "starts through runscoped (systemd path), %d in flight" % inflight,
                "%.0f tasks/s" % d["systemd_starts_per_s"],
                "bare StartTransientUnit, same concurrency %.0f/s" % d["bare_systemd_starts_per_s"], "%.2fx" % r,
                ">= 0.6x", verdict(r >= 0.6))
    if "cgroupfs_starts_per_s" in d and "bare_cgroupfs_starts_per_s" in d:
        r = d["cgroupfs_starts_per_s"] / d["bare_cgroupfs_starts_per_s"]
        rep.add("11", "starts through runscoped (cgroupfs v1), %d in flight" % inflight,
                "%.0f tasks/s" % d["cgroupfs_starts_per_s"],
                "bare loop (cgroup, fork+exec shim and task, syncfs per batch) %.0f/s" % d["bare_cgroupfs_starts_per_s"],
                "%.2fx" % r, ">= 0.6x", verdict(r >= 0.6))
    for path in ("systemd", "cgroupfs"):
        for call in ("list", "start"):
            idle, busy = d.get("%s_idle_%s_p99_ms" % (path, call)), d.get("%s_hostile_%s_p99_ms" % (path, call))
            if idle is None or busy is None:
                continue
            name = "ListTasks" if call == "list" else "StartTask"
            rep.add("11", "root's %s p50 / p99 under a member's 8 hour-long stops + flood (%s)" % (name, path),
                    "%.2f / %.2f ms" % (d["%s_hostile_%s_p50_ms" % (path, call)], busy),
                    "idle daemon %.2f / %.2f ms" % (d["%s_idle_%s_p50_ms" % (path, call)], idle),
                    "%.2fx (p99)" % (busy / idle if idle > 0 else 0), "(reported; tests assert < 10 s)", "-")
    if "systemd_starts_per_s" in d and "bare_start_transient_unit_per_s" in d:
        r = d["systemd_starts_per_s"] / d["bare_start_transient_unit_per_s"]
        rep.add("5", "starts through runscoped (systemd path)", "%.0f tasks/s" % d["systemd_starts_per_s"],
                "bare StartTransientUnit, 64 in flight %.0f/s" % d["bare_start_transient_unit_per_s"], "%.2fx" % r,
                "(reported)", "-")
    if "systemd_run_scope_per_s" in d and "systemd_starts_per_s" in d:
        rep.add("5", "starts through runscoped vs systemd-run", "%.0f tasks/s" % d["systemd_starts_per_s"],
                "systemd-run --scope %.0f/s" % d["systemd_run_scope_per_s"],
                "%.2fx" % (d["systemd_starts_per_s"] / d["systemd_run_scope_per_s"]), "(reported)", "-")
    for path in ("systemd", "cgroupfs"):
        for key, label in (("rss_idle_kib", "daemon RSS idle"), ("rss_busy_kib", "daemon RSS with 1000 tasks")):
            if path + "_" + key in d:
                mib = d[path + "_" + key] / 1024
                rep.add("5", "%s (%s)" % (label, path), "%.1f MiB" % mib, "-", "-", "< 64 MiB", verdict(mib < 64))
        if path + "_shim_rss_max_kib" in d:
            kib = d[path + "_shim_rss_max_kib"]
            rep.add("5", "shim RSS, max (%s)" % path, "%.0f KiB" % kib, "-", "-", "< 1 MiB", verdict(kib < 1024))
    return True


def load_rows(rep, raw, have_daemon_bench):
    lines = tagged(read(raw, "load"), "load")
    if read(raw, "load") is None:
        return
    if not lines:
        rep.missing("7", "load through runscoped (cgroupfs)", "run-load.sh failed (raw output below)")
        return
    l = lines[-1]
    n = int(l["n"])
    ok = l["failures"] == 0 and (status(raw, "load") or {}).get("rc") == "0"
    rep.add("7", "%d tasks through runscoped (cgroupfs v1): start / stop" % n,
            "%.0f / %.0f tasks/s" % (l["start_rate"], l["stop_rate"]), "-", "-", "all start, listed, stop; nothing left",
            verdict(ok))
    rep.add("7", "daemon CPU for %d starts+stops+destroys" % n, "%.2f s (%.2f ms/task)" % (
        l["cpu_total_s"], 1000 * l["cpu_total_s"] / n), "-", "-", "(reported)", "-")
    mib = l["peak_rss_kb"] / 1024
    rep.add("5" if not have_daemon_bench else "7", "daemon peak RSS with %d tasks (cgroupfs)" % n, "%.1f MiB" % mib,
            "at start %.1f MiB" % (l["rss_start_kb"] / 1024), "-", "< 64 MiB", verdict(mib < 64))
    shim = tagged(read(raw, "load"), "shim")
    if shim:
        s = shim[-1]
        rep.add("5" if not have_daemon_bench else "7", "shim RSS (median / max of %d)" % s["sampled"],
                "%d / %d KiB" % (s["rss_kb_median"], s["rss_kb_max"]), "RssAnon %d KiB" % s["rss_anon_kb_median"],
                "-", "< 1 MiB", verdict(s["rss_kb_max"] < 1024))


def plot(out, start_points, cpuset_points):
    if not shutil.which("gnuplot") or not (start_points or cpuset_points):
        return False
    data = os.path.join(out, ".report-data")
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "start.dat"), "w") as f:
        for p in start_points:
            f.write("%d %f %f %f\n" % p)
    with open(os.path.join(data, "cpuset.dat"), "w") as f:
        for p in cpuset_points:
            f.write("%d %f %f %f\n" % p)
    script = """
set terminal pngcairo size 1200,480 font ",10"
set output '{png}'
set multiplot layout 1,2
set title 'Start to exit status of /bin/true (p50), cgroupfs'
set xlabel 'tasks already running'
set ylabel 'ms'
set yrange [0:*]
set key center right
plot '{d}/start.dat' u 1:3 w lp lw 2 pt 7 t 'runscope runner (status known)', \\
     '{d}/start.dat' u 1:4 w lp lw 2 pt 5 t 'runscope runner (cgroup removed)', \\
     '{d}/start.dat' u 1:2 w lp lw 2 pt 9 t 'bare fork+exec+wait (baseline)'
set title 'Cost of one core reservation change'
set xlabel 'shared tasks running (N)'
set ylabel 'microseconds (log)'
set logscale xy
set yrange [*:*]
plot '{d}/cpuset.dat' u 1:2 w lp lw 2 pt 7 t 'runscope partitions (2 writes)', \\
     '{d}/cpuset.dat' u 1:4 w lp lw 2 pt 5 t 'kernel floor: one bare cpuset.cpus write', \\
     '{d}/cpuset.dat' u 1:3 w lp lw 2 pt 9 t 'per-task rewrite (baseline)'
unset multiplot
""".format(png=os.path.join(out, "report.png"), d=data)
    ok = subprocess.run(["gnuplot"], input=script, text=True).returncode == 0
    shutil.rmtree(data, ignore_errors=True)
    return ok


def main():
    raw, out = sys.argv[1], sys.argv[2]
    machine_lines = {k: v for k, v in (l.split("=", 1) for l in (read(raw, "machine") or "").splitlines() if "=" in l)}
    running = sorted(int(f[len("start-"):-4]) for f in os.listdir(raw) if re.fullmatch(r"start-\d+\.txt", f))
    rep = Report()
    start_points = start_rows(rep, raw, running)
    kill_rows(rep, raw)
    systemd_rows(rep, raw)
    cpuset_points = cpuset_rows(rep, raw)
    exec_rows(rep, raw, start_points)
    have_daemon = daemon_rows(rep, raw)
    load_rows(rep, raw, have_daemon)
    png = plot(out, start_points, cpuset_points)

    m = machine_lines
    md = ["# runscope benchmark report", "",
          "Written by `bench/run-all.sh %s` on %s (commit %s) in %s s. Every ratio compares two figures "
          "measured in the same run on the same machine; the machine is shared and noisy, so judge ratios, "
          "not absolute times." % (m.get("build", ""), m.get("date", "?"), m.get("commit", "?"),
                                   m.get("total_seconds", "?")), "",
          "## Machine", "", "| | |", "|---|---|"]
    for key, label in (("kernel", "kernel"), ("cpu_model", "CPU"), ("cpus", "CPUs"), ("mem_mib", "memory (MiB)"),
                       ("cgroup_mode", "cgroup mode"), ("pid1", "PID 1"),
                       ("systemd", "systemd (contained, for the systemd path)"), ("build", "build type"),
                       ("load_start", "load average at start (1/5/15 min)"), ("load_end", "load average at end")):
        md.append("| %s | %s |" % (label, m.get(key, "?")))
    md += ["", "## Figures against their baselines and targets", "",
           "| issue | figure | value | baseline (same run) | ratio | target | |", "|---|---|---|---|---|---|---|"]
    md += ["| %s |" % " | ".join(str(c) for c in row) for row in rep.rows]
    if png:
        md += ["", "![start latency against tasks running; reconcile cost against N](report.png)", "",
               "Left: start-to-exit p50 against the number of tasks already running (each in its own cgroup), "
               "with bare fork+exec+wait measured in the same run. Right: the cost of one core reservation "
               "change against N shared tasks, runscope's two partition writes beside the per-task rewrite."]
    md += ["", "## Steps", "", "| step | exit | seconds |", "|---|---|---|"]
    steps = sorted(f[:-7] for f in os.listdir(raw) if f.endswith(".status"))
    for name in steps:
        st = status(raw, name)
        md.append("| %s | %s | %s |" % (name, st.get("rc"), st.get("seconds")))
    md += ["", "## Raw output", ""]
    for name in steps:
        md += ["### " + name, "", "```", (read(raw, name) or "").strip()[-6000:], "```", ""]
    with open(os.path.join(out, "REPORT.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
