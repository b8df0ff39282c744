// An applier makes one backend's cpusets say what the reconciler wants: the shared partition,
// the reserved partition, and each reserved task's own cgroup or scope. It reads and writes one
// target at a time; the reconciler decides what, when and in which order.
#pragma once

#include <optional>
#include <string>

#include "common/cpuset.hpp"
#include "common/task_id.hpp"

namespace runscope::cpuset {

struct Target {
  enum class Kind { shared, reserved, task };
  Kind kind;
  std::optional<TaskId> task;  // set for Kind::task

  static Target shared() { return {Kind::shared, std::nullopt}; }
  static Target reserved() { return {Kind::reserved, std::nullopt}; }
  static Target of(const TaskId& id) { return {Kind::task, id}; }
  std::string describe() const;  // "shared partition", "reserved partition", "task a/t"
};

class Applier {
 public:
  virtual ~Applier() = default;
  virtual std::string name() const = 0;
  // Makes the parent and both partitions exist (idempotent), with the parent holding at least
  // `usable`. Called once, before the first reconcile.
  virtual void prepare(const CpuSet& usable) = 0;
  // The CPUs the target is configured with; nullopt when it does not exist (a task not created
  // yet or already gone). An unset value reads as the empty set.
  virtual std::optional<CpuSet> read(const Target& target) = 0;
  // Sets the target's CPUs. Never called with an empty set.
  virtual void write(const Target& target, const CpuSet& cpus) = 0;
};

}  // namespace runscope::cpuset
