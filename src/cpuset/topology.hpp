// The CPU topology the planner chooses from: which CPUs are online, which are SMT siblings of
// one physical core, and which package and NUMA node each belongs to. Read from sysfs with an
// injectable root, or built synthetically for tests.
#pragma once

#include <filesystem>
#include <vector>

#include "common/cpuset.hpp"

namespace runscope::cpuset {

struct CpuInfo {
  unsigned id = 0;
  unsigned package = 0;  // physical_package_id
  unsigned node = 0;     // NUMA node; 0 where the kernel has no NUMA information
  CpuSet siblings;       // online SMT siblings, itself included
  bool operator==(const CpuInfo&) const = default;
};

class Topology {
 public:
  Topology() = default;
  explicit Topology(std::vector<CpuInfo> cpus);  // sorted by id; ids unique

  // `system` is /sys/devices/system (holding cpu/ and node/). Throws Error naming the file at fault.
  static Topology read(const std::filesystem::path& system = "/sys/devices/system");

  // sockets x cores x threads, CPU ids numbered like Linux on x86 (thread t of core c of socket s
  // is s*cores + c + t*sockets*cores); one NUMA node per socket; only CPUs in `online` (if non-empty).
  static Topology synthetic(unsigned sockets, unsigned cores, unsigned threads, const CpuSet& online = {});

  const std::vector<CpuInfo>& cpus() const { return cpus_; }
  CpuSet online() const;
  const CpuInfo* find(unsigned cpu) const;  // nullptr when offline or unknown
  // The distinct physical cores (sibling sets), ascending by their lowest CPU.
  std::vector<CpuSet> cores() const;

 private:
  std::vector<CpuInfo> cpus_;
};

}  // namespace runscope::cpuset
