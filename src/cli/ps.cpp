// `runscope ps [--json]`: the tasks the caller may see (root: all; others: their own).
#include <algorithm>
#include <cstdio>

#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"

namespace runscope::cli {
namespace {

int run_ps(const Globals& globals, bool json) {
  auto tasks = connect_daemon(globals)->list();
  if (json) {
    auto out = nlohmann::json::array();
    for (const auto& t : tasks) out.push_back({{"alloc", t.alloc}, {"task", t.task}, {"state", t.state}, {"pid", t.pid}});
    print_json(out);
    return 0;
  }
  std::size_t alloc_w = 5, task_w = 4;
  for (const auto& t : tasks) {
    alloc_w = std::max(alloc_w, t.alloc.size());
    task_w = std::max(task_w, t.task.size());
  }
  auto width = [](std::size_t w) { return static_cast<int>(w); };
  std::printf("%-*s  %-*s  %-10s  %s\n", width(alloc_w), "ALLOC", width(task_w), "TASK", "STATE", "PID");
  for (const auto& t : tasks) {
    std::printf("%-*s  %-*s  %-10s  %s\n", width(alloc_w), t.alloc.c_str(), width(task_w), t.task.c_str(),
                t.state.c_str(), t.pid == 0 ? "-" : std::to_string(t.pid).c_str());
  }
  return 0;
}

}  // namespace

Command add_ps(CLI::App& app, const Globals& globals) {
  auto json = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("ps", "List tasks");
  sub->add_flag("--json", *json, "Print a JSON array");
  return {sub, [&globals, json] { return run_ps(globals, *json); }};
}

}  // namespace runscope::cli
