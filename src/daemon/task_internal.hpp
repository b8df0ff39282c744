// TaskManager's per-task record, shared by its source files (not part of the API).
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>

#include "common/fd.hpp"
#include "daemon/task_manager.hpp"

namespace runscope::daemon {

struct TaskManager::Task {
  explicit Task(TaskInfo info) : record{std::move(info)} {}

  // Guarded by TaskManager::mutex_.
  TaskRecord record;
  std::deque<TaskEvent> history;
  std::shared_ptr<UniqueFd> shim_pidfd;  // shared with the watcher's poll set while it polls
  bool exit_seen = false;                // the watcher saw the shim end; whoever holds `op` finishes
  std::uint64_t watch_key = 0;           // its entry in the watcher's epoll set; 0: not watched
  bool stop_requested = false;

  std::filesystem::path dir;  // set once
  bool own_child = false;     // the shim is our child (not one adopted after a restart): reap it

  // Serializes what acts on the task: start, stop, destroy, finish. Guards cg and finished.
  std::mutex op;
  std::unique_ptr<cgroup::TaskCgroup> cg;
  bool cg_released = false;  // cg closed while the task runs (release_cgroups): adopt it again
  bool finished = false;
};

// Holds a task's `op`. The watcher leaves a shim's end to whoever holds `op` (it only try-locks):
// on release this finishes the task if the watcher saw its shim end meanwhile. The check and the
// unlock happen under the registry lock, the one the watcher takes to set `exit_seen`.
class TaskManager::OpLock {
 public:
  OpLock(TaskManager& manager, TaskPtr task) : manager_(manager), task_(std::move(task)) { task_->op.lock(); }
  OpLock(const OpLock&) = delete;
  OpLock& operator=(const OpLock&) = delete;
  ~OpLock() {
    for (;;) {
      std::unique_lock lock(manager_.mutex_);
      if (task_->finished || !task_->exit_seen) {
        task_->op.unlock();
        return;
      }
      lock.unlock();
      try {
        manager_.finish_locked(task_, std::nullopt, "");
      } catch (...) {
        task_->finished = true;  // never loop on a failure; finish_locked logs its own
      }
    }
  }

 private:
  TaskManager& manager_;
  TaskPtr task_;
};

// Sends `sig` to the task's main process if that pid is still in the task's cgroup, through a
// pidfd opened after the check (pid reuse can't redirect it). False when there is none.
bool signal_main(TaskManager::Task& task, int sig);

}  // namespace runscope::daemon
