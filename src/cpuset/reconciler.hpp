// The reconciler holds the desired cpuset state, reads back what the backend observes and writes
// only what differs, in an order the kernel accepts: the reserved partition grows before a task
// inside it does and shrinks after; the shared partition has no cpuset children. A change touches
// only the shared partition, the reserved partition and the tasks whose reservation changed, so
// its cost does not depend on how many shared tasks run.
#pragma once

#include <cstdint>
#include <vector>

#include "cpuset/applier.hpp"
#include "cpuset/planner.hpp"

namespace runscope::cpuset {

struct ReconcileCounts {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
};

class Reconciler {
 public:
  explicit Reconciler(Applier& applier) : applier_(applier) {}

  // Start-up (also after a restart): prepare the layout, then reconcile everything. Writes nothing
  // that already matches.
  void start(const DesiredState& desired);
  // A change (reserve/release): reads and corrects the partitions and the tasks whose CPUs changed.
  void change(const DesiredState& next);
  // Periodic: reads every target (partitions + reservations, never shared tasks) and fixes drift.
  void reconcile_all();

  const DesiredState& desired() const { return desired_; }
  ReconcileCounts counts() const { return counts_; }  // totals since construction

 private:
  void converge(const std::vector<TaskId>& tasks);
  std::optional<CpuSet> read(const Target& target);
  CpuSet read_partition(const Target& target);
  void write(const Target& target, const CpuSet& cpus);

  Applier& applier_;
  DesiredState desired_;
  ReconcileCounts counts_;
};

}  // namespace runscope::cpuset
