// TaskService over a cgroup Backend, the cpuset front door and per-task supervisors (shims),
// event-driven (docs/daemon.md, "How operations run"):
//
//   registry    one short lock over the tasks, an index by cgroup name (the collision check is
//               O(1)) and one by owner; reads copy a published snapshot under it and never touch a
//               task's own lock;
//   Reactor     one thread waiting on every shim's pidfd, the control socket of each start under
//               way, every deadline (a stop's grace period is a timer, not a thread);
//   StepPool    a few threads for short blocking steps, shared fairly between callers;
//   StateWriter task.json written atomically and made durable in batches (one syncfs for every
//               record written meanwhile); a start is answered only once its record is durable;
//   Admission   what each caller may hold in flight, in operations and in bytes.
//
// Each task is a small state machine (task_internal.hpp) under a lock of its own, which is never
// held across a wait. Its state lives in state_dir/tasks/<cgroup_name>/task.json, so a restarted
// daemon finds (recover()) what it left.
#pragma once

#include <signal.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"
#include "config/config.hpp"
#include "cpuset/cpusets.hpp"
#include "daemon/admission.hpp"
#include "daemon/reactor.hpp"
#include "daemon/shim_launcher.hpp"
#include "daemon/state_writer.hpp"
#include "daemon/step_pool.hpp"
#include "daemon/task_record.hpp"
#include "daemon/task_service.hpp"
#include "driver/credentials.hpp"
#include "quota/quota.hpp"

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
  // and adopt it again (Backend::adopt) to stop or finish it. Without this a v1 task costs 7 fds,
  // and 10,000 tasks would need 70,000 (runscoped's hard limit may be 20,000).
  bool release_cgroups = false;
  std::string cpusets_off_reason;                       // said when resources.cores is refused
  std::vector<std::string> base_env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  StepPoolOptions steps;
  AdmissionLimits admission;
  std::size_t max_waiters = 32;  // callers waiting on one task's end at once
  // [limits]: what a caller's tasks may hold (null: the built-in [limits], no override).
  std::shared_ptr<const quota::Quotas> quotas;
};

// Where the manager says what it did that no caller asked about (recovery, cleanup failures).
// Called from any of the manager's threads (steps, reactor, writer), possibly at once: it must be
// thread-safe itself, as runscoped's is (spdlog's _mt logger).
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
  // Stops serving operations and joins every thread; leave_running=false stops every task first.
  // Callers still waiting are answered with an error; a start under way is undone.
  void shutdown(bool leave_running = true);
  // A reload's [task] section: denied_uids for every start from now on; kill_signal and
  // kill_timeout for every stop from now on of a task whose spec names none.
  void set_task_policy(const config::TaskConfig& task);
  // A reload's [limits]: for every start from now on (tasks running keep what they hold).
  void set_quotas(std::shared_ptr<const quota::Quotas> quotas);

  using TaskService::destroy;
  using TaskService::start;
  using TaskService::stop;
  void start(SpecSource spec, const Caller& caller, Reply<TaskId> done) override;
  void stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller, Reply<> done) override;
  void destroy(const TaskId& id, const Caller& caller, Reply<> done) override;
  void signal(const TaskId& id, int sig, const Caller& caller) override;
  TaskInfo inspect(const TaskId& id, const Caller& caller) const override;
  std::vector<TaskInfo> list(const Caller& caller) const override;
  cgroup::Stats stats(const TaskId& id, const Caller& caller) const override;
  std::vector<TaskEvent> events(const TaskId& id, const Caller& caller) const override;
  LogInfo logs(const TaskId& id, const Caller& caller) const override;
  UniqueFd open_log(const TaskId& id, const std::string& stream, const Caller& caller) const override;
  CpuPoolInfo cpu_pool() const override;
  std::map<std::string, std::string> fingerprint() const override;
  std::unique_ptr<Subscription> subscribe(Listener listener) override;
  using TaskService::enter;
  void enter(const TaskId& id, EnterRequest request, const Caller& caller, Reply<int> done) override;

  struct Task;  // daemon/task_internal.hpp
  using TaskPtr = std::shared_ptr<Task>;

  // For tests: what is in flight.
  std::size_t timers_and_watches() const { return reactor_.watched(); }
  std::uint64_t durable_batches() const { return writer_.batches(); }

 private:
  class ListenerSlot;
  struct Policy {
    std::vector<uid_t> denied_uids;
    int kill_signal;
    Duration kill_timeout;
    std::shared_ptr<const quota::Quotas> quotas;
  };
  // Called by insert() under the registry lock with what the owner's unended tasks hold, so two
  // starts of one caller cannot both pass a limit; throws to refuse.
  using AdmitCheck = std::function<void(const quota::Usage&)>;

  // Registry (task_manager.cpp).
  void check_serving() const;  // Error(conflict) once shutdown() began
  TaskPtr find(const TaskId& id, const Caller& caller) const;
  // Throws conflict when the name (or its cgroup name) is taken, then whatever `check` throws.
  void insert(const TaskPtr& task, const AdmitCheck& check = {});
  quota::Usage usage_of(uid_t owner) const;  // registry lock held
  void erase(const TaskPtr& task) noexcept;
  void publish(Task& task);                       // task's lock held: its record becomes what reads see
  void record_event(Task& task, TaskEvent event);  // task's lock held
  void emit(const TaskId& id, const TaskEvent& event);
  void persist_now(const Task& task) const;  // task's lock held; logs failures
  Policy policy() const;
  void log(const std::string& line) const;
  std::filesystem::path task_dir(const TaskId& id) const;
  Reactor::TimePoint now() const { return std::chrono::steady_clock::now(); }

  // Starting (task_start.cpp).
  void prepare(const SpecSource& source, const Caller& caller, const Reply<TaskId>& reply);
  TaskPtr admit_task(driver::TaskSpec& spec, const Caller& caller, const std::optional<driver::Credentials>& creds);
  void make_task(const TaskPtr& task, const driver::TaskSpec& spec, const std::optional<driver::Credentials>& creds);
  void on_control(const TaskPtr& task);
  void on_start_deadline(const TaskPtr& task);
  void place_step(const TaskPtr& task, pid_t pid);
  std::string place_now(cgroup::TaskCgroup& cg, pid_t pid, std::exception_ptr sent);
  void answer_place(const TaskPtr& task, const std::string& answer);
  void commit_start(const TaskPtr& task, pid_t task_pid);
  void started(const TaskPtr& task, TaskRecord record);
  void fail_start(const TaskPtr& task, std::exception_ptr error);  // task's lock held: undo on the pool
  void undo_start(const TaskPtr& task, std::exception_ptr error) noexcept;

  // Stopping and ending (task_stop.cpp, task_watcher.cpp).
  void request_end(const TaskPtr& task, std::optional<Duration> grace, bool destroy, Reply<> reply);
  void advance(const TaskPtr& task);  // task's lock held: the next step, if one is due
  void arm_timer(const TaskPtr& task, Reactor::TimePoint when);
  void on_timer(const TaskPtr& task);
  void begin_stop(const TaskPtr& task);
  void begin_kill(const TaskPtr& task);
  void begin_finish(const TaskPtr& task);
  void begin_remove(const TaskPtr& task);
  void step_done(const TaskPtr& task);  // clears busy, advances
  void watch_shim(const TaskPtr& task);  // task's lock held
  void on_shim_exit(const TaskPtr& task);
  void finish_now(const TaskPtr& task, const std::string& message);  // recovery: inline, durable
  cgroup::TaskCgroup* cgroup_of(Task& task) const;  // the task's step: adopts a released one
  void release_cgroup(Task& task) const noexcept;  // the task's step: per release_cgroups
  void release_cpus(const Task& task) noexcept;

  // Entering (task_enter.cpp).
  struct EnterSession;
  void enter_step(const std::shared_ptr<EnterSession>& session, const TaskPtr& task);
  void enter_spawn(const std::shared_ptr<EnterSession>& session, const TaskPtr& task);

  // Recovery (task_recovery.cpp, task_rebuild.cpp).
  void recover_one(const std::filesystem::path& dir);
  std::optional<TaskRecord> rebuild_record(const std::filesystem::path& dir, const std::string& why);
  void remove_unowned_cgroups();  // and the supervisor homes of tasks that no longer run
  void remove_stray_supervisors(const std::set<std::string>& running) noexcept;  // logs failures
  void move_shim_home(cgroup::TaskCgroup* cg, pid_t shim, const TaskId& id);

  cgroup::Backend& backend_;
  cpuset::Cpusets* cpusets_;
  ShimLauncher& launcher_;
  Clock& clock_;
  const ManagerOptions options_;
  LogLine log_;

  mutable std::mutex policy_mutex_;
  Policy policy_;

  mutable std::mutex registry_mutex_;  // the maps below and every Task's published fields
  std::map<TaskId, TaskPtr> tasks_;
  std::unordered_map<std::string, TaskPtr> by_cgroup_;  // "a-b"/"c" and "a"/"b-c" share one
  std::map<uid_t, std::set<TaskId>> by_owner_;
  bool stopping_ = false;
  bool shut_down_ = false;

  std::mutex listeners_mutex_;  // held while a listener runs, so unsubscribing waits for it
  std::map<std::uint64_t, Listener> listeners_;
  std::uint64_t next_listener_ = 0;

  Admission admission_;
  Admission enters_;  // EnterTask's commands running (AdmissionLimits::member_enters)
  StateWriter writer_;
  StepPool pool_;
  Reactor reactor_;
};

}  // namespace runscope::daemon
