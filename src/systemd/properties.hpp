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

// Where the supervisors (runscope-shim) live: "<parent stem>-supervisors.slice", a child of
// `parent` beside the partition slices (so `systemctl stop <parent>` still ends it all), and in it
// one delegated scope "<parent stem>\x2dsupervisors.scope" holding a cgroup per shim. "\x2d" (an
// escaped '-') is never in a task's cgroup name (escape_name() leaves '-' as it is), so no task's
// scope can take or squat that name.
std::string supervisor_slice_for(const std::string& parent);
std::string supervisors_scope_for(const std::string& parent);

// The supervisors' scope, made around `anchor` (the process that keeps it while no shim runs):
// Description, Slice, PIDs, Delegate (runscope makes the shims' cgroups in it), TasksMax=infinity
// (one shim per task, whatever their number), CollectMode=inactive-or-failed, DefaultDependencies=no.
// A delegated scope's OOMPolicy is "continue": an OOM kill of one shim never stops the others.
std::vector<UnitProperty> supervisors_scope_properties(const std::string& slice, pid_t anchor);

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
