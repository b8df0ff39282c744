// The daemon's single source of truth about tasks, as the D-Bus adaptor (api/) and the tests see
// it. Every call names the caller (from the bus credentials, never from the spec): a caller that is
// not root sees and acts on only its own tasks, and its tasks run as itself.
//
// Errors are runscope::Error; api/ maps the kinds to named D-Bus errors:
// invalid_argument -> InvalidSpec, not_found -> NotFound, resources -> NotEnoughCores,
// permission -> AccessDenied, conflict -> Conflict, unsupported -> Unsupported, else Failed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroup/cgroup.hpp"
#include "common/cpuset.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"
#include "driver/task_spec.hpp"

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
  // alloc, task, state, pid, unit|cgroup, exit_code, signal, oom_killed, started_at, finished_at (RFC 3339), ...
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

// Unsubscribes when destroyed: no callback runs after its Subscription is gone.
class Subscription {
 public:
  virtual ~Subscription() = default;
};

class TaskService {
 public:
  virtual ~TaskService() = default;
  // Returns once the task runs in its cgroup, or throws with nothing left (no cgroup, scope,
  // process or state entry).
  virtual TaskId start(const driver::TaskSpec& spec, const Caller& caller) = 0;
  virtual void stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller) = 0;
  virtual void signal(const TaskId& id, int sig, const Caller& caller) = 0;
  virtual void destroy(const TaskId& id, const Caller& caller) = 0;
  virtual TaskInfo inspect(const TaskId& id, const Caller& caller) const = 0;
  virtual std::vector<TaskInfo> list(const Caller& caller) const = 0;
  virtual cgroup::Stats stats(const TaskId& id, const Caller& caller) const = 0;
  virtual std::vector<TaskEvent> events(const TaskId& id, const Caller& caller) const = 0;
  virtual LogInfo logs(const TaskId& id, const Caller& caller) const = 0;
  virtual CpuPoolInfo cpu_pool() const = 0;
  virtual std::map<std::string, std::string> fingerprint() const = 0;
  using Listener = std::function<void(const TaskId&, const TaskEvent&)>;
  virtual std::unique_ptr<Subscription> subscribe(Listener listener) = 0;
};

}  // namespace runscope::daemon
