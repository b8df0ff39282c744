// `runscope kill ALLOC TASK`: stop with no grace period, so the cgroup kill follows the kill
// signal at once and nothing in the task's cgroup survives (SIGKILL to the main pid alone would
// leave its children).
#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"

namespace runscope::cli {

// StopTask's 0 means "the task's own kill_timeout": the shortest grace period is 1 us.
constexpr auto kNoGrace = std::chrono::microseconds(1);

Command add_kill(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<TaskArgs>();
  auto* sub = app.add_subcommand("kill", "Kill a task and everything in its cgroup now");
  add_task_args(*sub, *o);
  return {sub, [&globals, o] {
            connect_daemon(globals)->stop(o->id(), kNoGrace);
            return 0;
          }};
}

}  // namespace runscope::cli
