// `runscope signal ALLOC TASK SIGNAL`: send SIGNAL (SIGHUP, HUP or 1) to the task's main process.
#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"
#include "config/config.hpp"

namespace runscope::cli {

Command add_signal(CLI::App& app, const Globals& globals) {
  struct Options {
    TaskArgs task;
    std::string signal;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("signal", "Send a signal to a task's main process");
  add_task_args(*sub, o->task);
  sub->add_option("signal", o->signal, "Signal name or number")->required();
  return {sub, [&globals, o] {
            int sig = config::parse_signal(o->signal);
            connect_daemon(globals)->signal(o->task.id(), sig);
            return 0;
          }};
}

}  // namespace runscope::cli
