// `runscope stop ALLOC TASK [--timeout D]`: the kill signal, then after the grace period (the
// task's kill_timeout unless given) the cgroup kill. Returns once the task is gone.
#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"
#include "common/units.hpp"

namespace runscope::cli {

Command add_stop(CLI::App& app, const Globals& globals) {
  struct Options {
    TaskArgs task;
    std::string timeout;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("stop", "Stop a task: its kill signal, then the cgroup kill after the grace period");
  add_task_args(*sub, o->task);
  sub->add_option("--timeout", o->timeout, "Grace period (default: the task's kill_timeout)");
  return {sub, [&globals, o] {
            std::optional<Duration> timeout;
            if (!o->timeout.empty()) timeout = parse_duration(o->timeout, "--timeout");
            connect_daemon(globals)->stop(o->task.id(), timeout);
            return 0;
          }};
}

}  // namespace runscope::cli
