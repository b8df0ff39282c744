// `runscope stats ALLOC TASK [--watch [--interval D]] [--json]`: the task's cgroup counters,
// once or every interval until the task is gone or the user interrupts.
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"
#include "common/units.hpp"

namespace runscope::cli {
namespace {

struct Options {
  TaskArgs task;
  bool watch = false, json = false;
  std::string interval = "1s";
};

void print_stats(const std::map<std::string, std::uint64_t>& stats, bool json) {
  if (json) {
    std::cout << nlohmann::json(stats).dump() << std::endl;
    return;
  }
  for (const auto& [key, value] : stats) {
    bool bytes = key.rfind("memory_", 0) == 0;
    std::cout << key << "\t" << (bytes ? format_size(value) : std::to_string(value)) << "\n";
  }
  std::cout << std::flush;
}

int run_stats(const Globals& globals, const Options& o) {
  auto interval = parse_duration(o.interval, "--interval");
  auto client = connect_daemon(globals);
  for (;;) {
    print_stats(client->stats(o.task.id()), o.json);
    if (!o.watch) return 0;
    auto state = client->inspect(o.task.id()).at("state");
    if (state != "running" && state != "pending") return 0;
    std::this_thread::sleep_for(interval);  // the user's refresh rate, not a wait for an event
    if (!o.json) std::cout << "\n";
  }
}

}  // namespace

Command add_stats(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("stats", "Show a task's CPU, memory, pids and OOM counters");
  add_task_args(*sub, o->task);
  sub->add_flag("--watch", o->watch, "Print again every interval while the task runs");
  sub->add_option("--interval", o->interval, "Refresh interval for --watch (default 1s)");
  sub->add_flag("--json", o->json, "One JSON object per sample");
  return {sub, [&globals, o] { return run_stats(globals, *o); }};
}

}  // namespace runscope::cli
