// cgroupfs backend for cgroup2 without systemd: one folder per task at
// <root>/<parent>/<cgroup_name> (or <parent>/shared|reserved/<name> for cpu partitions), with the
// controllers its limits need enabled down the path through cgroup.subtree_control.
#pragma once

#include <filesystem>
#include <memory>

#include "cgroup/cgroup.hpp"
#include "cgroup/fs_ops.hpp"
#include "common/clock.hpp"

namespace runscope::cgroup {

struct V2Options {
  std::filesystem::path root;    // the cgroup2 mount, e.g. /sys/fs/cgroup
  std::filesystem::path parent;  // relative to root, e.g. "runscope"
  Clock* clock = &system_clock();
  CgroupFsOps ops = CgroupFsOps::kernel();
};

inline constexpr const char* kSharedPartition = "shared";
inline constexpr const char* kReservedPartition = "reserved";

std::unique_ptr<Backend> make_v2_backend(V2Options options);

}  // namespace runscope::cgroup
