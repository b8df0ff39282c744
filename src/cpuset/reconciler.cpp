#include "cpuset/reconciler.hpp"

#include "common/error.hpp"

namespace runscope::cpuset {

std::string Target::describe() const {
  switch (kind) {
    case Kind::shared: return "shared partition";
    case Kind::reserved: return "reserved partition";
    case Kind::task: return "task " + (task ? task->display() : std::string("?"));
  }
  return "?";
}

void Reconciler::start(const DesiredState& desired) {
  desired_ = desired;
  applier_.prepare(desired_.reserved);
  reconcile_all();
}

void Reconciler::change(const DesiredState& next) {
  std::vector<TaskId> touched;
  for (const auto& [task, cpus] : next.tasks) {
    auto it = desired_.tasks.find(task);
    if (it == desired_.tasks.end() || !(it->second == cpus)) touched.push_back(task);
  }
  desired_ = next;
  converge(touched);
}

void Reconciler::reconcile_all() {
  std::vector<TaskId> all;
  for (const auto& [task, cpus] : desired_.tasks) all.push_back(task);
  converge(all);
}

std::optional<CpuSet> Reconciler::read(const Target& target) {
  ++counts_.reads;
  return applier_.read(target);
}

void Reconciler::write(const Target& target, const CpuSet& cpus) {
  if (cpus.empty())  // an empty cpuset would strand tasks (v2: ENOSPC); systemd would ignore it
    throw Error(ErrorKind::invalid_argument, "refusing to write an empty cpuset to the " + target.describe());
  applier_.write(target, cpus);
  ++counts_.writes;
}

// Grow the reserved partition, set the shared partition, set the tasks, shrink the reserved
// partition. A missing task is skipped (its backend applies its CPUs when it makes it).
void Reconciler::converge(const std::vector<TaskId>& tasks) {
  const auto reserved = Target::reserved();
  auto reserved_now = read(reserved);
  if (!reserved_now)
    throw Error(ErrorKind::not_found, "the reserved partition is missing (" + applier_.name() + ")");
  if (!desired_.reserved.is_subset_of(*reserved_now)) {
    CpuSet grown = desired_.reserved | *reserved_now;
    write(reserved, grown);
    reserved_now = grown;
  }
  if (!desired_.shared.empty()) {
    const auto shared = Target::shared();
    auto shared_now = read(shared);
    if (!shared_now)
      throw Error(ErrorKind::not_found, "the shared partition is missing (" + applier_.name() + ")");
    if (!(*shared_now == desired_.shared)) write(shared, desired_.shared);
  }
  for (const auto& task : tasks) {
    auto target = Target::of(task);
    const CpuSet& want = desired_.tasks.at(task);
    auto now = read(target);
    if (now && !(*now == want)) write(target, want);
  }
  if (!(*reserved_now == desired_.reserved)) write(reserved, desired_.reserved);
}

}  // namespace runscope::cpuset
