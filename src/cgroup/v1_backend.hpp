// cgroupfs backend for cgroup v1 (legacy and hybrid hosts): one cgroup per task in each
// hierarchy it uses (cpuset, cpu, cpuacct, memory, pids, freezer where mounted), placed by
// writing a held child's pid into every hierarchy, killed with the freezer.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "cgroup/cgroup.hpp"
#include "cgroup/fs_ops.hpp"
#include "cgroup/host.hpp"
#include "common/clock.hpp"

namespace runscope::cgroup {

namespace v1file {
inline constexpr const char* kProcs = "cgroup.procs";
inline constexpr const char* kTasks = "tasks";
inline constexpr const char* kCpusetCpus = "cpuset.cpus";
inline constexpr const char* kCpusetMems = "cpuset.mems";
inline constexpr const char* kCpuShares = "cpu.shares";
inline constexpr const char* kCpuacctStat = "cpuacct.stat";
inline constexpr const char* kMemoryLimit = "memory.limit_in_bytes";
inline constexpr const char* kMemoryUsage = "memory.usage_in_bytes";
inline constexpr const char* kMemoryMaxUsage = "memory.max_usage_in_bytes";
inline constexpr const char* kMemoryOomControl = "memory.oom_control";
inline constexpr const char* kPidsMax = "pids.max";
inline constexpr const char* kPidsCurrent = "pids.current";
inline constexpr const char* kFreezerState = "freezer.state";
}  // namespace v1file

struct V1Options {
  HostLayout layout;
  CgroupPaths own;  // our own cgroups (own_cgroups()), for relative parents
  // A leading '/' anchors the parent at each hierarchy's root; otherwise it lies beneath our own
  // cgroup in that hierarchy. The memory hierarchy always nests beneath our own memory cgroup
  // (when that is not the root), so no task ever leaves the memory cgroup that accounts for us.
  std::string parent;
  Clock* clock = &system_clock();
  CgroupFsOps ops = CgroupFsOps::kernel();
  std::filesystem::path proc_root = "/proc";  // place() checks /proc/<pid>/cgroup
};

// The controllers the v1 backend puts a task into when they are mounted.
inline constexpr const char* kV1TaskControllers[] = {"cpuset", "cpu", "cpuacct", "memory", "pids", "freezer"};

std::unique_ptr<Backend> make_v1_backend(V1Options options);

}  // namespace runscope::cgroup
