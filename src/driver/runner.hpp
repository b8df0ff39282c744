// The raw_exec core: start a command confined in its own cgroup, and make sure that when it
// ends, or is stopped, nothing it started is left running and its cgroup is gone.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"
#include "driver/process.hpp"
#include "driver/spawn.hpp"
#include "driver/verdict.hpp"

namespace runscope::driver {

// How a graceful stop goes: `signal` to the main process, then `timeout` for it to end, then
// SIGKILL to everything in the task's cgroup.
struct KillPolicy {
  int signal = SIGTERM;
  Duration timeout = std::chrono::seconds(5);
};

struct RunnerOptions {
  std::vector<uid_t> denied_uids;                      // [task] denied_uids
  Duration cleanup_timeout = std::chrono::seconds(30);  // for killing what is left and rmdir
};

class RunningTask {
 public:
  RunningTask(const RunningTask&) = delete;
  RunningTask& operator=(const RunningTask&) = delete;
  // Not finished yet: everything is SIGKILLed and the cgroup removed, best effort, never throws.
  ~RunningTask();

  const TaskId& id() const { return id_; }
  pid_t pid() const { return main_.pid(); }
  int pidfd() const { return main_.pidfd(); }  // readable once the main process has ended
  const KillPolicy& kill_policy() const { return kill_; }
  cgroup::TaskCgroup* cgroup() const { return cgroup_.get(); }  // nullptr in no_cgroups mode
  std::string location() const;
  bool finished() const { return result_.has_value(); }

  // Waits for the main process to end on its own; then kills whatever is left in the task's
  // cgroup (process group in no_cgroups mode) and removes the cgroup. nullopt at the deadline.
  // Throws Error(timeout) if the leftovers could not be removed within the cleanup timeout.
  std::optional<ExitStatus> wait(const Deadline& deadline);
  ExitStatus wait();

  // Graceful stop: the kill signal to the main process, up to the kill timeout for it to end,
  // then SIGKILL for everything and the cgroup removed. Returns how the main process ended.
  ExitStatus stop();

  // The same in steps, for a caller that keeps serving events meanwhile (`runscope exec`):
  // begin_stop() sends the kill signal, then SIGCONT (a stopped task could not act on it), and
  // returns the end of the grace period; wait() or kill_now() follow.
  Deadline begin_stop();
  bool stop_requested() const { return stop_requested_; }
  // SIGKILL for everything now, the cgroup removed; returns how the main process ended.
  ExitStatus kill_now();

  // `sig` to the main process; false once it has ended.
  bool signal_main(int sig);
  // `sig` to the main process's process group (its own, from setsid), as a terminal sends job
  // control signals to a foreground job. Safe while the main process is unreaped: its zombie
  // keeps the group id from reuse. False once it has been reaped.
  bool signal_group(int sig);

  // Once finished: how it ended, with what its cgroup counted just before it was removed.
  Verdict verdict() const;

 private:
  friend class Runner;
  RunningTask(TaskId id, KillPolicy kill, Clock& clock, Duration cleanup_timeout,
              std::unique_ptr<cgroup::TaskCgroup> cg, Process main);
  ExitStatus finish();
  void kill_process_group(const Deadline& deadline);

  TaskId id_;
  KillPolicy kill_;
  Clock* clock_;
  Duration cleanup_timeout_;
  std::unique_ptr<cgroup::TaskCgroup> cgroup_;
  Process main_;
  std::optional<ExitStatus> result_;
  WallTime started_at_ = std::chrono::system_clock::now();
  WallTime finished_at_{};
  std::optional<cgroup::Stats> usage_;
  bool stop_requested_ = false;
};

class Runner {
 public:
  // `backend` nullptr: no_cgroups mode (the task's process group stands in for its cgroup).
  Runner(cgroup::Backend* backend, Spawner& spawner, Clock& clock, RunnerOptions options = {});

  // Creates the cgroup with `limits`, starts spec.argv inside it and returns once it has been
  // exec'd. Throws Error(permission) for a denied uid, Error(unsupported) for limits without
  // cgroups, or the spawner's error; in every case nothing it made is left behind.
  std::unique_ptr<RunningTask> start(const TaskId& id, const cgroup::Limits& limits, const SpawnSpec& spec,
                                     const KillPolicy& kill = {});

  bool uses_cgroups() const { return backend_ != nullptr; }

 private:
  void check_uid(const SpawnSpec& spec) const;
  // Removes the cgroup of a task whose start failed; a failure to remove it is logged: the start's
  // own error is the one thrown.
  void remove_unstarted(const TaskId& id, cgroup::TaskCgroup* cg) const;

  cgroup::Backend* backend_;
  Spawner* spawner_;
  Clock* clock_;
  RunnerOptions options_;
};

// An exec that did not fit in the task's memory limit: the new program's arguments and
// environment are charged to the task's cgroup as they are copied, and the OOM killer never picks
// a child still in its vfork (spawn.cpp), so the charge fails and execve answers E2BIG (ENOMEM
// later in the exec). The cgroup's peak at its limit tells that from a real E2BIG (ARG_MAX).
// Returns `e` with the limit named, or nullopt when `e` is not such a failure. Read the cgroup
// before it is removed. `runscope exec` (Runner::start) and runscoped (a shim's failed start) both
// name it.
std::optional<Error> exec_out_of_memory(const Error& e, std::optional<std::uint64_t> memory_max,
                                        const cgroup::TaskCgroup& cg);

}  // namespace runscope::driver
