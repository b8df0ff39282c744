// TaskService over a cgroup Backend, the cpuset front door and per-task supervisors (shims).
// One registry under one lock; each task's state in state_dir/tasks/<cgroup_name>/task.json,
// written atomically at every change, so a restarted daemon finds (recover()) what it left.
// One watcher thread waits on every shim's pidfd; a shim's exit ends its task.
#pragma once

#include <signal.h>

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
  std::string cpusets_off_reason;                       // said when resources.cores is refused
  std::vector<std::string> base_env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
};

// The options runscoped's config sets ([task], [daemon]); `systemd_path`: log target "auto" means
// the journal.
ManagerOptions manager_options(const config::Config& config, bool systemd_path);

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
  // that no task owns. A corrupt task.json is logged and its cgroup treated as unowned.
  void recover();
  // Stops watching; leave_running=false also stops every task first.
  void shutdown(bool leave_running = true);

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
  void release_cpus(const Task& task) noexcept;
  void watch();
  void wake() const;
  void recover_one(const std::filesystem::path& dir);
  void remove_unowned_cgroups();
  void log(const std::string& line) const;

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

  UniqueFd wake_fd_;  // eventfd: the watcher's poll set changed, or it must stop
  bool stopping_ = false;
  bool shut_down_ = false;
  std::thread watcher_;
};

}  // namespace runscope::daemon
