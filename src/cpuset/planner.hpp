// The cpuset planner: pure logic, no I/O. It decides which CPUs a reservation gets and what the
// shared pool is, and produces the desired state the reconciler makes true.
#pragma once

#include <cstddef>
#include <map>

#include "common/cpuset.hpp"
#include "common/task_id.hpp"
#include "config/config.hpp"
#include "cpuset/topology.hpp"

namespace runscope::cpuset {

// What the cgroups should say. `shared` may be empty only while no shared task runs (then the
// shared partition is left as it is: an empty cpuset is never written).
struct DesiredState {
  CpuSet shared;                   // the shared partition: every shared task runs here
  CpuSet reserved;                 // the reserved partition: every CPU a reservation may hold
  std::map<TaskId, CpuSet> tasks;  // each reservation's exclusive CPUs
  bool operator==(const DesiredState&) const = default;
};

class Planner {
 public:
  // `reservable` must be online and non-empty; `system_reserved` inside it; at least
  // `min_shared` CPUs must be left. Throws Error(config) naming the key at fault.
  Planner(Topology topology, CpuSet reservable, CpuSet system_reserved, unsigned min_shared);

  // Takes `count` CPUs for `task`: whole physical cores before single threads, one NUMA
  // node/package before spreading. Throws Error(resources) saying how many were asked for and how
  // many are free (also when it would leave fewer than min_shared CPUs in the shared pool, shared
  // tasks running or not; with min_shared 0, fewer than one while shared tasks run),
  // Error(conflict) if the task already holds a reservation; nothing changes when it throws.
  CpuSet reserve(const TaskId& task, unsigned count);
  // Re-adopts a reservation after a restart; throws Error(conflict) if its CPUs are not free.
  void restore(const TaskId& task, const CpuSet& cpus);
  bool release(const TaskId& task);  // false if the task held nothing

  // Shared tasks running. A shared task cannot start when the pool is below min_shared, or empty
  // (Error(resources)): only a restore or re-plan over running reservations leaves it so.
  void add_shared_task();
  void remove_shared_task();
  std::size_t shared_tasks() const { return shared_tasks_; }

  CpuSet usable() const { return usable_; }  // reservable - system-reserved
  CpuSet shared_pool() const;                // usable - every reservation
  unsigned available() const;                // how many CPUs a reservation may take now
  const std::map<TaskId, CpuSet>& reservations() const { return reservations_; }
  const Topology& topology() const { return topology_; }
  DesiredState desired() const;

 private:
  CpuSet choose(const CpuSet& free, unsigned count) const;
  CpuSet take(const CpuSet& from, const CpuSet& free, unsigned count) const;
  unsigned kept_shared() const;  // CPUs no reservation may take
  CpuSet usable_core(unsigned cpu) const;  // the CPU's usable SMT siblings, itself included

  Topology topology_;
  CpuSet reservable_;
  CpuSet system_reserved_;
  CpuSet usable_;
  unsigned min_shared_;
  std::size_t shared_tasks_ = 0;
  std::map<TaskId, CpuSet> reservations_;
};

// The planner the configuration asks for: reservable_cores defaults to every online CPU.
Planner make_planner(const config::CpusetConfig& config, Topology topology);

}  // namespace runscope::cpuset
