#include "cpuset/cpusets.hpp"

namespace runscope::cpuset {

Cpusets::Cpusets(Planner planner, Applier& applier, Clock& clock, Duration reconcile_interval)
    : planner_(std::move(planner)), reconciler_(applier), clock_(clock), interval_(reconcile_interval) {
  published_ = planner_.desired();
}

void Cpusets::publish() {
  auto now = planner_.desired();
  std::lock_guard lock(published_mutex_);
  published_ = std::move(now);
}

void Cpusets::start() {
  std::lock_guard lock(mutex_);
  reconciler_.start(planner_.desired());
  next_full_ = clock_.now() + interval_;
}

CpuSet Cpusets::reserve(const TaskId& task, unsigned count) {
  std::lock_guard lock(mutex_);
  CpuSet cpus = planner_.reserve(task, count);
  try {
    reconciler_.change(planner_.desired());
  } catch (...) {
    planner_.release(task);
    try {
      reconciler_.change(planner_.desired());
    } catch (...) {  // the next reconcile retries; the first error is the one to report
    }
    publish();
    throw;
  }
  publish();
  return cpus;
}

void Cpusets::release(const TaskId& task) {
  std::lock_guard lock(mutex_);
  if (!planner_.release(task)) return;
  publish();  // released whether or not applying works now: the next reconcile retries it
  reconciler_.change(planner_.desired());
}

void Cpusets::restore(const TaskId& task, const CpuSet& cpus) {
  std::lock_guard lock(mutex_);
  planner_.restore(task, cpus);
  publish();
}

void Cpusets::add_shared_task() {
  std::lock_guard lock(mutex_);
  planner_.add_shared_task();
  publish();
}

void Cpusets::remove_shared_task() {
  std::lock_guard lock(mutex_);
  planner_.remove_shared_task();
  publish();
}

bool Cpusets::tick() {
  std::lock_guard lock(mutex_);
  if (clock_.now() < next_full_) return false;
  next_full_ = clock_.now() + interval_;
  reconciler_.reconcile_all();
  return true;
}

void Cpusets::reconcile_now() {
  std::lock_guard lock(mutex_);
  reconciler_.reconcile_all();
  next_full_ = clock_.now() + interval_;
}

void Cpusets::replan(const config::CpusetConfig& config) {
  std::lock_guard lock(mutex_);
  Planner next = make_planner(config, planner_.topology());
  for (const auto& [task, cpus] : planner_.reservations()) next.restore(task, cpus);
  for (std::size_t i = 0; i < planner_.shared_tasks(); ++i) next.add_shared_task();
  try {
    reconciler_.change(next.desired());
  } catch (...) {
    try {
      reconciler_.change(planner_.desired());
    } catch (...) {  // the next reconcile retries; the first error is the one to report
    }
    throw;
  }
  planner_ = std::move(next);
  publish();
  interval_ = config.reconcile_interval;
  next_full_ = clock_.now() + interval_;
}

CpuSet Cpusets::shared_pool() const {
  std::lock_guard lock(mutex_);
  return planner_.shared_pool();
}

DesiredState Cpusets::desired() const {
  std::lock_guard lock(published_mutex_);
  return published_;
}

ReconcileCounts Cpusets::counts() const {
  std::lock_guard lock(mutex_);
  return reconciler_.counts();
}

}  // namespace runscope::cpuset
