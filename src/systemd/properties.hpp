// What runscope asks systemd for when it makes a task's scope: pure functions of the task's
// identity and limits, so the exact property list is unit-tested without a bus.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "systemd/manager.hpp"

namespace runscope::systemd {

inline constexpr const char* kDefaultSlice = "runscope.slice";

// The slice a task's scope goes under: `parent` (a "*.slice" name) for CpuPartition::none,
// "<parent stem>-shared.slice" / "<parent stem>-reserved.slice" for the cpuset partitions
// (children of `parent` in systemd's dash hierarchy). Throws Error(config) on a non-slice name.
std::string slice_for(const std::string& parent, cgroup::CpuPartition partition);

// The AllowedCPUs property; throws Error(invalid_argument) for an empty set (systemd would leave
// the live cpuset unchanged instead of emptying it).
UnitProperty allowed_cpus_property(const CpuSet& cpus);

// Description, Slice, PIDFDs (when `pidfd` is given) or PIDs, Delegate, CollectMode,
// DefaultDependencies, then the limits that are set.
std::vector<UnitProperty> scope_properties(const TaskId& id, const cgroup::Limits& limits,
                                           const std::string& slice, pid_t pid, std::optional<int> pidfd);

// Finds a property by name; nullptr when absent.
const UnitProperty* find_property(const std::vector<UnitProperty>& props, const std::string& name);

}  // namespace runscope::systemd
