// The applier for hosts where systemd owns the cgroup tree: the partitions are the slices
// "<parent stem>-shared.slice" and "<parent stem>-reserved.slice" (children of the parent slice by
// systemd's dash rule) and each reserved task is its scope. CPUs are read back from and written to
// the units' AllowedCPUs property through SetUnitProperties, never by mkdir or cgroupfs writes.
#pragma once

#include <string>

#include "cpuset/applier.hpp"
#include "systemd/manager.hpp"

namespace runscope::cpuset {

inline constexpr const char* kAllowedCpus = "AllowedCPUs";
inline constexpr const char* kSliceInterface = "org.freedesktop.systemd1.Slice";
inline constexpr const char* kScopeInterface = "org.freedesktop.systemd1.Scope";

class SystemdApplier final : public Applier {
 public:
  // `parent_slice` is config cgroups.parent ("runscope.slice"); throws Error(config) if it is not
  // a slice name.
  SystemdApplier(systemd::SystemdManager& manager, std::string parent_slice);

  std::string name() const override { return "systemd under " + parent_; }
  // Nothing to make: systemd loads a slice without a unit file when its properties are set.
  void prepare(const CpuSet&) override {}
  // A slice that is not loaded yet reads as the empty set (so it gets written); a scope that is
  // not loaded reads as missing.
  std::optional<CpuSet> read(const Target& target) override;
  void write(const Target& target, const CpuSet& cpus) override;

  std::string unit(const Target& target) const;

 private:
  systemd::SystemdManager& manager_;
  std::string parent_;
  std::string shared_slice_;
  std::string reserved_slice_;
};

}  // namespace runscope::cpuset
