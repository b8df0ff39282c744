// The cpuset module's front door for the daemon: the planner (which CPUs) plus the reconciler
// (make the backend say so), behind one lock. Every change is planned first and applied at once;
// if applying fails the plan is rolled back, so the planner never promises what was not made.
#pragma once

#include <mutex>

#include "common/clock.hpp"
#include "common/units.hpp"
#include "config/config.hpp"
#include "cpuset/planner.hpp"
#include "cpuset/reconciler.hpp"

namespace runscope::cpuset {

class Cpusets {
 public:
  Cpusets(Planner planner, Applier& applier, Clock& clock, Duration reconcile_interval);

  // Prepares the layout and reconciles everything (daemon start-up, after restoring reservations).
  void start();

  // Reserve before the task's cgroup is made (pass the CPUs as its cpuset); release after it is
  // gone, so a task leaves before its cores return to the pool.
  CpuSet reserve(const TaskId& task, unsigned count);
  void release(const TaskId& task);
  void restore(const TaskId& task, const CpuSet& cpus);  // before start()

  void add_shared_task();
  void remove_shared_task();

  // Reconciles everything if the interval has passed since the last full reconcile; returns
  // whether it did. The daemon calls it from its timer.
  bool tick();
  void reconcile_now();

  // A reload: a planner with the new reserved CPUs and min_shared that re-adopts every current
  // reservation and shared task, applied at once. Throws (Error config/conflict/resources, or the
  // applier's error) and keeps the old plan when the new one cannot hold what runs now.
  // The reconcile interval changes too. Topology stays the one read at start.
  void replan(const config::CpusetConfig& config);

  CpuSet shared_pool() const;
  // The plan as of the last change, from a copy under a lock of its own: never waits for a change
  // being applied (which may wait for systemd), so the daemon's bus thread can answer CpuPool.
  DesiredState desired() const;
  ReconcileCounts counts() const;

 private:
  void publish();  // mutex_ held

  mutable std::mutex mutex_;
  Planner planner_;
  mutable std::mutex published_mutex_;
  DesiredState published_;
  Reconciler reconciler_;
  Clock& clock_;
  Duration interval_;
  Clock::time_point next_full_{};
};

}  // namespace runscope::cpuset
