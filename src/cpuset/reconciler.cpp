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

// A partition that vanished (a slice stopped, a folder removed by hand) is made again once.
CpuSet Reconciler::read_partition(const Target& target) {
  auto now = read(target);
  if (!now) {
    applier_.prepare(desired_.reserved);
    now = read(target);
  }
  if (!now) throw Error(ErrorKind::not_found, "the " + target.describe() + " is missing (" + applier_.name() + ")");
  return *now;
}

// Grow the reserved partition, set the shared partition, set the tasks, shrink the reserved
// partition. A missing task is skipped (its backend applies its CPUs when it makes it).
void Reconciler::converge(const std::vector<TaskId>& tasks) {
  const auto reserved = Target::reserved();
  CpuSet reserved_now = read_partition(reserved);
  if (!desired_.reserved.is_subset_of(reserved_now)) {
    reserved_now |= desired_.reserved;
    write(reserved, reserved_now);
  }
  if (!desired_.shared.empty()) {
    const auto shared = Target::shared();
    if (!(read_partition(shared) == desired_.shared)) write(shared, desired_.shared);
  }
  for (const auto& task : tasks) {
    auto target = Target::of(task);
    const CpuSet& want = desired_.tasks.at(task);
    auto now = read(target);
    if (now && !(*now == want)) write(target, want);
  }
  if (!(reserved_now == desired_.reserved)) write(reserved, desired_.reserved);
}

}  // namespace runscope::cpuset
