// The flags `exec` and `run` share, and the one function that turns them into a TaskSpec: both
// commands build the same spec document and validate it with the daemon's own validator
// (driver/task_spec.hpp), so a value is accepted or refused the same way, with the same message,
// whichever command (or runscoped) sees it. Messages name the flag, not the spec field.
#pragma once

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "driver/task_spec.hpp"

namespace runscope::cli {

struct TaskFlags {
  std::string alloc, task, memory_max, cpu_weight, pids_max, kill_signal, kill_timeout, user, chdir;
  std::vector<std::string> env, command;
  // `run` only: runscoped hands out cores and picks the log target.
  std::optional<unsigned> cores;
  std::string log_target;
};

enum class FlagsFor { exec, run };

// Adds the shared flags (and the command positional) to `sub`.
void add_task_flags(CLI::App& sub, TaskFlags& flags, FlagsFor command);

// The StartTask document for the flags, not yet validated (`run` sends it as JSON).
nlohmann::json task_document(const TaskFlags& flags);

// task_document, validated: throws Error(invalid_argument) naming the flag and the value.
driver::TaskSpec task_spec_from_flags(const TaskFlags& flags);

}  // namespace runscope::cli
