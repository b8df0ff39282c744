// The cgroup2 folder systemd made for a scope, driven through its own control files: kill with
// no survivors, wait until empty, list processes, read stats. Used instead of FreezeUnit (open
// bugs: systemd #37569) and KillUnit (it does not wait for the cgroup to empty).
// Interim: written before cgroup/v2_dir.hpp (branch `cgroup`) existed; to be replaced by it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"

namespace runscope::systemd {

inline constexpr const char* kCgroupProcs = "cgroup.procs";
inline constexpr const char* kCgroupEvents = "cgroup.events";
inline constexpr const char* kCgroupKill = "cgroup.kill";
inline constexpr const char* kCgroupFreeze = "cgroup.freeze";
inline constexpr const char* kPidsMax = "pids.max";
inline constexpr const char* kPidsCurrent = "pids.current";
inline constexpr const char* kCpuStat = "cpu.stat";
inline constexpr const char* kMemoryCurrent = "memory.current";
inline constexpr const char* kMemoryPeak = "memory.peak";
inline constexpr const char* kMemoryEvents = "memory.events";

// Every process in the folder and its sub-folders (a delegated scope may make some).
std::vector<pid_t> cg_read_pids_recursive(const std::filesystem::path& dir);
bool cg_is_populated(const std::filesystem::path& dir);
// Waits for "populated 0" in cgroup.events (poll(POLLPRI) on it); Error(timeout) at the deadline.
void cg_wait_unpopulated(const std::filesystem::path& dir, const Deadline& deadline);
// pids.max=0 where present, then cgroup.kill (or freeze, SIGKILL each pid, thaw, as `method`
// says), then waits until empty. Always thaws, also on error. A missing folder is already empty.
void cg_kill_all(const std::filesystem::path& dir, const Deadline& deadline, cgroup::KillMethod method);
cgroup::Stats cg_read_stats(const std::filesystem::path& dir);

}  // namespace runscope::systemd
