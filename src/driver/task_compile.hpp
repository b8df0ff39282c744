// The one step from a task spec to what starts it, shared by `runscope exec` (the runner, in the
// foreground) and runscoped (through the shim): the catalog validates the spec, the driver builds
// argv, env and cwd, the resources become cgroup limits, the kill policy gets the configured
// defaults. Who the task runs as is the caller's policy (exec: whoever `--user` names; runscoped:
// the caller, or anyone when the caller is root), resolved before and passed in.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/task_id.hpp"
#include "driver/credentials.hpp"
#include "driver/runner.hpp"
#include "driver/spawn.hpp"
#include "driver/task_spec.hpp"

namespace runscope::driver {

// What the configuration decides when the spec does not.
struct TaskDefaults {
  std::vector<std::string> base_env;  // the environment the spec's "env" is laid over
  int kill_signal = SIGTERM;          // [task] kill_signal
  Duration kill_timeout = std::chrono::seconds(5);
};

struct CompiledTask {
  TaskId id;              // the spec's alloc (or a fresh UUID) and task
  cgroup::Limits limits;  // memory, cpu weight, pids; exclusive cores are the daemon's to add
  SpawnSpec spawn;        // argv, env, cwd and the credentials passed in
  KillPolicy kill;
};

// Throws Error(invalid_argument) naming the field when the catalog refuses the spec.
void validate_task(const TaskSpec& spec);

// validate_task, then the pieces above. An "env" key replaces the base environment's entry.
CompiledTask compile_task(const TaskSpec& spec, const TaskDefaults& defaults,
                          std::optional<Credentials> credentials);

// Throws Error(permission) when `uid` is in [task] denied_uids: the one check and wording for
// both paths.
void check_uid_allowed(uid_t uid, const std::vector<uid_t>& denied);

}  // namespace runscope::driver
