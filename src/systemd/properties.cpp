#include "systemd/properties.hpp"

#include <algorithm>
#include <limits>

namespace runscope::systemd {
namespace {

constexpr std::string_view kSliceSuffix = ".slice";

UnitProperty text(const char* name, std::string value) { return {name, PropertyValue(std::move(value))}; }
UnitProperty flag(const char* name, bool value) { return {name, PropertyValue(value)}; }
UnitProperty number(const char* name, std::uint64_t value) { return {name, PropertyValue(value)}; }

}  // namespace

std::string slice_for(const std::string& parent, cgroup::CpuPartition partition) {
  if (parent.size() <= kSliceSuffix.size() || !parent.ends_with(kSliceSuffix))
    throw Error(ErrorKind::config, "cgroups.parent: '" + parent + "' is not a systemd slice name (*.slice)");
  const std::string stem = parent.substr(0, parent.size() - kSliceSuffix.size());
  switch (partition) {
    case cgroup::CpuPartition::shared: return stem + "-shared.slice";
    case cgroup::CpuPartition::reserved: return stem + "-reserved.slice";
    case cgroup::CpuPartition::none: break;
  }
  return parent;
}

std::string supervisor_slice_for(const std::string& parent) {
  const auto parent_slice = slice_for(parent, cgroup::CpuPartition::none);  // validates the name
  return parent_slice.substr(0, parent_slice.size() - kSliceSuffix.size()) + "-supervisors.slice";
}

std::string supervisors_scope_for(const std::string& parent) {
  const auto parent_slice = slice_for(parent, cgroup::CpuPartition::none);
  return parent_slice.substr(0, parent_slice.size() - kSliceSuffix.size()) + "\\x2dsupervisors.scope";
}

std::vector<UnitProperty> supervisors_scope_properties(const std::string& slice, pid_t anchor) {
  return {text("Description", "runscope task supervisors"),
          text("Slice", slice),
          {"PIDs", PropertyValue(std::vector<std::uint32_t>{static_cast<std::uint32_t>(anchor)})},
          flag("Delegate", true),
          number("TasksMax", std::numeric_limits<std::uint64_t>::max()),
          text("CollectMode", "inactive-or-failed"),
          flag("DefaultDependencies", false)};
}

UnitProperty allowed_cpus_property(const CpuSet& cpus) {
  if (cpus.empty())
    throw Error(ErrorKind::invalid_argument, "AllowedCPUs: refusing an empty CPU set (systemd would not apply it)");
  return {"AllowedCPUs", PropertyValue(cpus.to_mask())};
}

std::vector<UnitProperty> scope_properties(const TaskId& id, const cgroup::Limits& limits,
                                           const std::string& slice, pid_t pid, std::optional<int> pidfd) {
  std::vector<UnitProperty> props;
  props.push_back(text("Description", "runscope task " + id.display()));
  props.push_back(text("Slice", slice));
  if (pidfd) {
    props.push_back({"PIDFDs", PropertyValue(PidFds{{*pidfd}})});
  } else {
    props.push_back({"PIDs", PropertyValue(std::vector<std::uint32_t>{static_cast<std::uint32_t>(pid)})});
  }
  props.push_back(flag("Delegate", true));
  // Without it a failed scope lingers and the next start of the same name fails (runc #3780).
  props.push_back(text("CollectMode", "inactive-or-failed"));
  props.push_back(flag("DefaultDependencies", false));
  if (limits.memory_max) props.push_back(number("MemoryMax", *limits.memory_max));
  if (limits.cpu_weight) props.push_back(number("CPUWeight", *limits.cpu_weight));
  if (limits.pids_max) props.push_back(number("TasksMax", *limits.pids_max));
  if (limits.cpuset) props.push_back(allowed_cpus_property(*limits.cpuset));
  return props;
}

const UnitProperty* find_property(const std::vector<UnitProperty>& props, const std::string& name) {
  auto it = std::find_if(props.begin(), props.end(), [&](const UnitProperty& p) { return p.name == name; });
  return it == props.end() ? nullptr : &*it;
}

}  // namespace runscope::systemd
