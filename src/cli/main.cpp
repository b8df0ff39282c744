// runscope: the command-line entry point. It only wires; each subcommand lives in its own file.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cli/context.hpp"
#include "cli/daemon_commands.hpp"
#include "cli/exec.hpp"
#include "cli/fingerprint.hpp"
#include "cli/orphans.hpp"
#include "cli/run.hpp"
#include "common/sanitizers.hpp"

namespace {

// Ends the process without exit handlers or static destructors: the kernel takes every page and fd
// back anyway, and the handlers of sixteen libraries cost `runscope exec -- true` about 0.15 ms
// after its task had ended (docs/driver.md, "Third pass"). stdio is flushed first (spdlog writes
// through it).
[[noreturn]] void end_process(int code) {
#if RUNSCOPE_SANITIZED
  std::exit(code);  // its handlers are the leak check and TSan's exit code
#else
  std::fflush(nullptr);
  ::_exit(code);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  using namespace runscope::cli;
  Globals globals;
  CLI::App app{"runscope: run tasks each in its own cgroup, killed with nothing left behind", "runscope"};
  app.set_version_flag("--version", "runscope " RUNSCOPE_VERSION);
  app.add_option_function<std::string>(
      "--config",
      [&globals](const std::string& path) {
        globals.config_path = path;
        globals.config_given = true;
      },
      "Config file (default /etc/runscope/runscope.toml)");
  app.add_option("--log-level", globals.log_level, "trace, debug, info, warn (default), error, off");
  app.add_option("--bus", globals.bus, "runscoped's bus: system (default), session or an address; env RUNSCOPE_BUS");
  app.require_subcommand(1);
  std::vector<Command> commands{add_exec(app, globals),    add_fingerprint(app, globals), add_run(app, globals),
                                add_stop(app, globals),    add_kill(app, globals),        add_signal(app, globals),
                                add_ps(app, globals),      add_inspect(app, globals),     add_stats(app, globals),
                                add_logs(app, globals),    add_cpus(app, globals),        add_orphans(app, globals),
                                add_enter(app, globals)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    auto extras = app.remaining();
    if (!extras.empty() && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
      // CLI11 takes an unknown command for a stray word and says only "A subcommand is required".
      std::fprintf(stderr, "runscope: unknown command '%s' (see runscope --help)\n", extras.front().c_str());
    } else {
      std::fprintf(stderr, "runscope: %s\n", e.what());
    }
    return kExitUsage;
  }
  int code = kExitUsage;
  try {
    setup_logging(globals.log_level);
    for (const auto& command : commands) {
      if (command.app->parsed()) {
        code = command.run();
        break;
      }
    }
  } catch (const std::exception& e) {
    code = report(e);
  }
  // Ends here without taking the parsed command line apart option by option: tearing down every
  // command's options cost about 0.2 ms of `runscope exec -- true`'s 8.6 (bench/REPORT.md).
  end_process(code);
}
