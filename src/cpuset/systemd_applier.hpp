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
  // Starts each partition slice that is not loaded as a transient unit (systemd refuses
  // SetUnitProperties on a unit it has not loaded); its parent slice is loaded with it.
  void prepare(const CpuSet&) override;
  // A scope that is not loaded reads as missing; so does a slice (prepare() makes them).
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
