#include "cpuset/systemd_applier.hpp"

#include "systemd/properties.hpp"

namespace runscope::cpuset {

SystemdApplier::SystemdApplier(systemd::SystemdManager& manager, std::string parent_slice)
    : manager_(manager),
      parent_(std::move(parent_slice)),
      shared_slice_(systemd::slice_for(parent_, cgroup::CpuPartition::shared)),
      reserved_slice_(systemd::slice_for(parent_, cgroup::CpuPartition::reserved)) {}

std::string SystemdApplier::unit(const Target& target) const {
  switch (target.kind) {
    case Target::Kind::shared: return shared_slice_;
    case Target::Kind::reserved: return reserved_slice_;
    case Target::Kind::task: break;
  }
  return target.task->unit_name();
}

void SystemdApplier::prepare(const CpuSet&) {
  for (const auto* slice : {&shared_slice_, &reserved_slice_}) {
    if (read(slice == &shared_slice_ ? Target::shared() : Target::reserved())) continue;
    try {
      manager_.start_transient_unit(*slice, {{"Description", std::string("runscope cpu partition")}});
    } catch (const systemd::BusError& e) {
      if (!e.is(systemd::kUnitExists)) throw;  // made meanwhile by a scope that names it
    }
  }
}

std::optional<CpuSet> SystemdApplier::read(const Target& target) {
  const bool is_task = target.kind == Target::Kind::task;
  try {
    auto value = manager_.get_unit_property(unit(target), is_task ? kScopeInterface : kSliceInterface, kAllowedCpus);
    auto* mask = std::get_if<std::vector<std::uint8_t>>(&value);
    if (!mask)
      throw Error(ErrorKind::bus, unit(target) + ": " + kAllowedCpus + " is not a byte array");
    return CpuSet::from_mask(*mask);
  } catch (const systemd::BusError& e) {
    if (!e.is(systemd::kNoSuchUnit)) throw;
    return std::nullopt;
  }
}

void SystemdApplier::write(const Target& target, const CpuSet& cpus) {
  manager_.set_unit_properties(unit(target), /*runtime=*/true, {systemd::allowed_cpus_property(cpus)});
}

}  // namespace runscope::cpuset
