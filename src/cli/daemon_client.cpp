#include "cli/daemon_client.hpp"

#include <iostream>

#include "api/bus.hpp"

namespace runscope::cli {

std::unique_ptr<api::ManagerClient> connect_daemon(const Globals& globals) {
  return std::make_unique<api::ManagerClient>(api::resolve_bus(globals.bus));
}

void add_task_args(CLI::App& sub, TaskArgs& args) {
  sub.add_option("alloc", args.alloc, "Allocation ID")->required();
  sub.add_option("task", args.task, "Task name")->required();
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

int exit_code_of(const nlohmann::json& inspected) {
  const auto& state = inspected.at("state");
  if (state == "exited" && inspected.at("exit_code").is_number()) return inspected.at("exit_code").get<int>();
  if (inspected.at("signal").is_number()) return 128 + inspected.at("signal").get<int>();
  if (state == "oom_killed" || state == "killed") return 128 + 9;
  return kExitFailure;
}

}  // namespace runscope::cli
