// `runscope inspect ALLOC TASK [--events]`: the task as JSON (schema in docs/api.md).
#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"

namespace runscope::cli {

Command add_inspect(CLI::App& app, const Globals& globals) {
  struct Options {
    TaskArgs task;
    bool events = false;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("inspect", "Print a task as JSON");
  add_task_args(*sub, o->task);
  sub->add_flag("--events", o->events, "Add the task's state history as \"events\"");
  return {sub, [&globals, o] {
            auto client = connect_daemon(globals);
            auto j = client->inspect(o->task.id());
            if (o->events) j["events"] = client->events(o->task.id());
            print_json(j);
            return 0;
          }};
}

}  // namespace runscope::cli
