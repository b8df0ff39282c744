// TaskManager's per-task state machine, shared by its source files (not part of the API).
//
//   starting --started--> running --stop--> stopping --grace over--> killing
//       |                    |                  |                        |
//       | failed             +------------------+-- shim ended ----------+--> finishing --> finished
//       v                                                                                    |
//   (removed)  <------------------------------------------------------------- destroy -------+
//
// At most one step of a task is on the StepPool at a time (`busy`); events that arrive meanwhile
// (its shim ended, a deadline passed, another stop) are recorded and acted on when the step ends
// (advance()). Requests never wait for a step: they join the task's waiters and are answered when
// the state they wait for is reached.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/fd.hpp"
#include "daemon/task_manager.hpp"

namespace runscope::daemon {

enum class Phase { starting, running, stopping, killing, finishing, finished, removed };

// A start under way: the shim's control channel and the caller's reply.
struct StartFlow {
  Reply<TaskId> reply;
  pid_t shim_pid = 0;
  std::shared_ptr<UniqueFd> shim_pidfd;
  std::shared_ptr<UniqueFd> control;  // kept alive by the reactor's callback too
  Reactor::Key control_watch = 0;
  Reactor::Key deadline = 0;
  bool step_in_flight = false;  // placing or committing: events wait for it
  bool timed_out = false;       // the deadline passed while a step was in flight
  bool done = false;            // committed or failing: later events are ignored
};

struct TaskManager::Task {
  Task(TaskId task_id, std::filesystem::path folder, uid_t uid)
      : id(std::move(task_id)), cgroup_name(id.cgroup_name()), dir(std::move(folder)), owner(uid), record{blank_info(id)} {}

  const TaskId id;
  const std::string cgroup_name;
  const std::filesystem::path dir;
  const uid_t owner;

  // Published: guarded by TaskManager::registry_mutex_; what reads see.
  std::shared_ptr<const TaskInfo> info;
  std::deque<TaskEvent> history;
  cgroup::Folders folders;  // stats and SignalTask's check read these by path

  // The task's own state: guarded by `mutex`, which is never held across a wait and is taken
  // before registry_mutex_ when both are.
  std::mutex mutex;
  Phase phase = Phase::starting;
  TaskRecord record;
  bool busy = false;       // one of its steps is queued or running on the pool
  bool exit_seen = false;  // its shim has ended
  std::optional<Reactor::TimePoint> kill_at;  // a stop was asked for: the grace period ends then
  bool destroy_wanted = false;
  bool shim_killed = false;                  // killing: the shim itself got SIGKILL
  Reactor::TimePoint cleanup_at{};           // killing: when to stop waiting for the shim
  std::vector<Reply<>> end_waiters;          // stop: answered once finished
  std::vector<Reply<>> gone_waiters;         // destroy: answered once removed
  Reactor::Key timer = 0;
  Reactor::TimePoint timer_at{};
  Reactor::Key shim_watch = 0;
  std::shared_ptr<UniqueFd> shim_pidfd;
  bool own_child = false;  // the shim is our child (not one adopted after a restart): reap it
  std::unique_ptr<StartFlow> start;

  // The cgroup, touched only by the task's one step in flight (or its start flow, or recovery).
  std::unique_ptr<cgroup::TaskCgroup> cg;
  bool cg_released = false;  // closed while the task runs (release_cgroups): adopt it again
};

// Sends `sig` to `pid` if it is still in the task's cgroup (read by path), through a pidfd opened
// after the check (pid reuse can't redirect it). False when there is no such process.
bool signal_in_cgroup(const cgroup::Folders& folders, pid_t pid, int sig);

// The message of an error carried as an exception_ptr.
std::string message_of(const std::exception_ptr& error);

// Calls each reply once with `outcome`, outside any lock.
void answer_all(std::vector<Reply<>>& replies, const Outcome<>& outcome) noexcept;

}  // namespace runscope::daemon
