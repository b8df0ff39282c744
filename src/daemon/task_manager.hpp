// TaskService over a cgroup Backend, the cpuset front door and per-task supervisors (shims).
// One registry under one lock; each task's state in state_dir/tasks/<cgroup_name>/task.json,
// written atomically at every change, so a restarted daemon finds (recover()) what it left.
// One watcher thread waits on every shim's pidfd through one epoll set (registered once per task,
// so a start or an end costs the same with 10 or 10,000 tasks running); a shim's exit ends its task.
#pragma once

#include <signal.h>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"
#include "common/fd.hpp"
#include "config/config.hpp"
#include "cpuset/cpusets.hpp"
#include "daemon/shim_launcher.hpp"
#include "daemon/task_record.hpp"
#include "daemon/task_service.hpp"

namespace runscope::daemon {

struct ManagerOptions {
  std::filesystem::path state_dir = "/var/lib/runscope";
  std::vector<uid_t> denied_uids;
  int kill_signal = SIGTERM;  // when the spec names none
  Duration kill_timeout = std::chrono::seconds(5);
  Duration cleanup_timeout = std::chrono::seconds(30);  // killing leftovers, removing cgroups
  Duration start_timeout = std::chrono::seconds(30);    // for the shim to report the task exec'd
  bool journal_logs = false;                            // log target "auto" means the journal
  std::size_t history_limit = 64;                       // events kept per task
  std::filesystem::path proc_root = "/proc";             // where recovery looks for a task's supervisor
  // Close a running task's cgroup (its folder fds: one per v1 hierarchy) once the task started,
  // and adopt it again (Backend::adopt) to signal, read stats, stop or finish it. Without this a
  // v1 task costs 7 fds, and 10,000 tasks would need 70,000 (runscoped's hard limit may be 20,000).
  bool release_cgroups = false;
  std::string cpusets_off_reason;                       // said when resources.cores is refused
  std::vector<std::string> base_env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
};

// Where the manager says what it did that no caller asked about (recovery, cleanup failures).
using LogLine = std::function<void(const std::string&)>;

class TaskManager final : public TaskService {
 public:
  // `cpusets` may be null (no reconciler: `resources.cores` is then unsupported).
  TaskManager(cgroup::Backend& backend, cpuset::Cpusets* cpusets, ShimLauncher& launcher, Clock& clock,
              ManagerOptions options, LogLine log = {});
  // shutdown(true) if not done: tasks keep running, every thread of ours is joined.
  ~TaskManager() override;

  // At start, before Cpusets::start(): reattach live tasks, report ended ones with their real
  // status, mark the ones whose shim vanished without a record `lost`, and remove cgroups of ours
  // that no task owns. A missing or corrupt task.json is logged and the task rebuilt from
  // launch.json and its cgroup; if that fails too, its cgroup is treated as unowned.
  void recover();
  // Stops watching; leave_running=false also stops every task first.
  void shutdown(bool leave_running = true);
  // A reload's [task] section: denied_uids for every start from now on; kill_signal and
  // kill_timeout for every stop from now on of a task whose spec names none.
  void set_task_policy(const config::TaskConfig& task);

  TaskId start(const driver::TaskSpec& spec, const Caller& caller) override;
  void stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller) override;
  void signal(const TaskId& id, int sig, const Caller& caller) override;
  void destroy(const TaskId& id, const Caller& caller) override;
  TaskInfo inspect(const TaskId& id, const Caller& caller) const override;
  std::vector<TaskInfo> list(const Caller& caller) const override;
  cgroup::Stats stats(const TaskId& id, const Caller& caller) const override;
  std::vector<TaskEvent> events(const TaskId& id, const Caller& caller) const override;
  LogInfo logs(const TaskId& id, const Caller& caller) const override;
  CpuPoolInfo cpu_pool() const override;
  std::map<std::string, std::string> fingerprint() const override;
  std::unique_ptr<Subscription> subscribe(Listener listener) override;

  struct Task;  // daemon/task_internal.hpp

 private:
  class ListenerSlot;
  class OpLock;
  using TaskPtr = std::shared_ptr<Task>;

  TaskPtr find(const TaskId& id, const Caller& caller) const;
  std::filesystem::path task_dir(const TaskId& id) const;
  void launch(const TaskPtr& task, const driver::TaskSpec& spec, const Caller& caller);
  void finish_locked(const TaskPtr& task, std::optional<TaskState> forced, const std::string& message);
  void stop_locked(const TaskPtr& task, Duration timeout);
  void record_event(const TaskPtr& task, TaskEvent event);  // mutex_ held
  void emit(const TaskId& id, const TaskEvent& event);
  void persist(const Task& task) const;                       // mutex_ held
  cgroup::TaskCgroup* cgroup_of(Task& task) const;            // op held: adopts a released one
  void release_cgroup(Task& task) const noexcept;             // op held: per release_cgroups
  void release_cpus(const Task& task) noexcept;
  void watch();
  void wake() const;
  void watch_shim(const TaskPtr& task);  // mutex_ held: add its shim's pidfd to the epoll set
  void unwatch_shim(Task& task);         // mutex_ held: take it out (idempotent)
  void recover_one(const std::filesystem::path& dir);
  // task.json missing or corrupt (`why`): the record rebuilt from launch.json, the cgroup and
  // the shim found through it; nullopt (logged) when even that fails.
  std::optional<TaskRecord> rebuild_record(const std::filesystem::path& dir, const std::string& why);
  void remove_unowned_cgroups();
  void log(const std::string& line) const;
  Duration kill_timeout_for(const Task& task) const;  // takes mutex_

  cgroup::Backend& backend_;
  cpuset::Cpusets* cpusets_;
  ShimLauncher& launcher_;
  Clock& clock_;
  ManagerOptions options_;
  LogLine log_;

  mutable std::mutex mutex_;  // the registry and every Task's record/history/shim fields
  std::map<TaskId, TaskPtr> tasks_;

  std::mutex listeners_mutex_;  // held while a listener runs, so unsubscribing waits for it
  std::map<std::uint64_t, Listener> listeners_;
  std::uint64_t next_listener_ = 0;

  UniqueFd wake_fd_;   // eventfd: the watcher must stop
  UniqueFd epoll_fd_;  // wake_fd_ (key 0) and every watched shim pidfd (its task's watch key)
  struct Watch {
    std::weak_ptr<Task> task;
    std::shared_ptr<UniqueFd> pidfd;  // kept open while registered, so its number can't be reused
  };
  std::map<std::uint64_t, Watch> watched_;  // guarded by mutex_; keys are never reused
  std::uint64_t next_watch_ = 1;
  bool stopping_ = false;
  bool shut_down_ = false;
  std::thread watcher_;
};

}  // namespace runscope::daemon
