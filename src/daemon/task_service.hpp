// The daemon's single source of truth about tasks, as the D-Bus adaptor (api/) and the tests see
// it. Every call names the caller (from the bus credentials, never from the spec): a caller that is
// not root sees and acts on only its own tasks, and its tasks run as itself.
//
// Two kinds of calls. Reads (inspect, list, stats, events, logs, cpu_pool, fingerprint) and
// signal answer at once from what the service has published, whatever any task is doing.
// Operations (start, stop, destroy) return at once too and answer later through their Reply,
// exactly once, from one of the service's threads, when the operation has ended; no caller's
// thread waits for them. The blocking overloads below wait for that reply, for tests and tools.
//
// Errors are runscope::Error; api/ maps the kinds to named D-Bus errors:
// invalid_argument -> InvalidSpec, not_found -> NotFound, resources -> NotEnoughCores,
// permission -> AccessDenied, conflict -> Conflict, unsupported -> Unsupported, else Failed.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroup/cgroup.hpp"
#include "common/cpuset.hpp"
#include "common/fd.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"
#include "driver/enter_spec.hpp"
#include "driver/task_spec.hpp"
#include "driver/verdict.hpp"

namespace runscope::daemon {

struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  bool is_root() const { return uid == 0; }
};

enum class TaskState { pending, running, exited, killed, oom_killed, failed, lost };
std::string to_string(TaskState state);
bool is_final(TaskState state);

using WallTime = std::chrono::system_clock::time_point;

struct TaskEvent {
  TaskState state = TaskState::pending;
  WallTime at{};
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool oom_killed = false;
  std::string message;  // e.g. the error that failed the task, "reattached after restart"
  uid_t owner = 0;      // whose task: who besides root may hear of it (set by the service)
};

struct TaskInfo {
  TaskId id;
  uid_t owner = 0;
  TaskState state = TaskState::pending;
  pid_t pid = 0;             // main process; 0 when not running
  std::string manager;       // "cgroupfs" | "systemd" | "none"
  std::string location;      // unit name or cgroup path(s)
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool oom_killed = false;
  std::optional<WallTime> started_at;
  std::optional<WallTime> finished_at;
  std::optional<CpuSet> cpus;  // reserved cores, if any
  driver::TaskSpec spec;
  driver::Usage usage;  // peak memory and CPU time, read when it ended (driver/verdict.hpp)
  // alloc, task, state, pid, unit|cgroup, then driver::Verdict's keys (exit_code ... cpu_system_usec), ...
  nlohmann::json to_json() const;
};

struct LogInfo {
  std::string target;  // "file" | "journal"
  std::optional<std::string> stdout_path, stderr_path;        // file target
  std::map<std::string, std::string> journal_match;          // journal target, e.g. RUNSCOPE_ALLOC=...
};

struct CpuPoolInfo {
  CpuSet reservable, reserved, shared;
  std::vector<std::pair<TaskId, CpuSet>> reservations;
};

// How an operation ended: its value, or the error it failed with.
template <typename T = std::monostate>
class Outcome {
 public:
  static Outcome success(T value = T{}) { return Outcome(std::move(value)); }
  static Outcome failure(std::exception_ptr error) { return Outcome(std::move(error)); }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const T& get() const {  // rethrows the error
    if (!ok()) std::rethrow_exception(std::get<std::exception_ptr>(v_));
    return std::get<T>(v_);
  }
  std::exception_ptr error() const { return ok() ? nullptr : std::get<std::exception_ptr>(v_); }

 private:
  explicit Outcome(T value) : v_(std::move(value)) {}
  explicit Outcome(std::exception_ptr error) : v_(std::move(error)) {}
  std::variant<T, std::exception_ptr> v_;
};

template <typename T = std::monostate>
using Reply = std::function<void(Outcome<T>)>;

// A start's spec, parsed on one of the service's threads rather than on the caller's (a spec of
// a few MiB takes tens of milliseconds to parse). `bytes` is what the caller is charged for it
// while the start is in flight (daemon/admission.hpp).
struct SpecSource {
  std::function<driver::TaskSpec()> parse;
  std::size_t bytes = 0;
  static SpecSource of(driver::TaskSpec spec);  // already parsed (tests, tools)
};

// A command to run inside a running task, with the caller's descriptors as its stdin, stdout and
// stderr (with spec.tty, one terminal's slave three times). Shared: the request outlives the call.
struct EnterRequest {
  driver::EnterSpec spec;
  std::shared_ptr<const std::array<UniqueFd, 3>> stdio;
};

// Unsubscribes when destroyed: no callback runs after its Subscription is gone.
class Subscription {
 public:
  virtual ~Subscription() = default;
};

class TaskService {
 public:
  virtual ~TaskService() = default;
  // Answers once the task runs in its cgroup and its record is on disk, or with the error, with
  // nothing left (no cgroup, scope, process or state entry).
  virtual void start(SpecSource spec, const Caller& caller, Reply<TaskId> done) = 0;
  // Answers once the task has ended (at once if it had): kill signal, then after `timeout` (the
  // task's kill_timeout when unset) the cgroup kill. A stop asked for while the task starts is
  // applied once it runs; a later stop with an earlier deadline moves the deadline up.
  virtual void stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller, Reply<> done) = 0;
  // Kills the task if it still runs (no grace period) and forgets it; answers once it is gone.
  virtual void destroy(const TaskId& id, const Caller& caller, Reply<> done) = 0;
  // To the task's main process, at once (it must be running).
  virtual void signal(const TaskId& id, int sig, const Caller& caller) = 0;
  virtual TaskInfo inspect(const TaskId& id, const Caller& caller) const = 0;
  virtual std::vector<TaskInfo> list(const Caller& caller) const = 0;
  virtual cgroup::Stats stats(const TaskId& id, const Caller& caller) const = 0;
  virtual std::vector<TaskEvent> events(const TaskId& id, const Caller& caller) const = 0;
  virtual LogInfo logs(const TaskId& id, const Caller& caller) const = 0;
  // The task's "stdout" or "stderr" log file, opened read-only for the caller after the ownership
  // check (the files are root's alone). not_found when it has none yet; unsupported when the task
  // logs to the journal (and by default: a service without log files).
  virtual UniqueFd open_log(const TaskId& id, const std::string& stream, const Caller& caller) const;
  virtual CpuPoolInfo cpu_pool() const = 0;
  virtual std::map<std::string, std::string> fingerprint() const = 0;
  using Listener = std::function<void(const TaskId&, const TaskEvent&)>;
  virtual std::unique_ptr<Subscription> subscribe(Listener listener) = 0;
  // Runs a command in the running task's cgroup (every hierarchy; on systemd its scope), as the
  // task's user unless root names another, with the task's environment and working directory
  // (docs/daemon.md, "Entering a task"). Answers when the command ends: its exit code, or 128+N
  // for signal N. Only root and the task's owner may enter (others: not_found). The default
  // answers unsupported (a service without the capability).
  virtual void enter(const TaskId& id, EnterRequest request, const Caller& caller, Reply<int> done);

  // The operations, waiting for their reply (rethrowing its error). For tests and tools: never
  // call them from one of the service's own threads (a reply, a listener).
  TaskId start(const driver::TaskSpec& spec, const Caller& caller);
  void stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller);
  void destroy(const TaskId& id, const Caller& caller);
  int enter(const TaskId& id, EnterRequest request, const Caller& caller);
};

}  // namespace runscope::daemon
