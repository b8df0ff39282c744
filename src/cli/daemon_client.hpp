// What the subcommands that talk to runscoped share: the connection (global --bus, then
// $RUNSCOPE_BUS), the ALLOC TASK positionals, and JSON output.
#pragma once

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "api/client.hpp"
#include "cli/context.hpp"

namespace runscope::cli {

std::unique_ptr<api::ManagerClient> connect_daemon(const Globals& globals);

// The two positionals every single-task command takes.
struct TaskArgs {
  std::string alloc, task;
  TaskId id() const { return TaskId(alloc, task); }
};
void add_task_args(CLI::App& sub, TaskArgs& args);

void print_json(const nlohmann::json& j);  // pretty, one document, newline

// The shell's view of a finished task: its exit code, 128+N when killed by signal N, 125 when
// it failed or was lost.
int exit_code_of(const nlohmann::json& inspected);

}  // namespace runscope::cli
