// runscoped: the daemon's entry point; it parses its options and hands over to run_daemon.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "runscoped/daemon.hpp"

int main(int argc, char** argv) {
  runscope::runscoped::DaemonArgs args;
  CLI::App app{"runscoped: runs tasks each in its own cgroup, served on D-Bus as org.runscope1", "runscoped"};
  app.set_version_flag("--version", "runscoped " RUNSCOPE_VERSION);
  app.add_option_function<std::string>(
      "--config",
      [&args](const std::string& path) {
        args.config_path = path;
        args.config_given = true;
      },
      "Config file (default /etc/runscope/runscope.toml)");
  app.add_option("--bus", args.bus, "system (default), session or a D-Bus address; env RUNSCOPE_BUS");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "runscoped: %s\n", e.what());
    return 64;  // EX_USAGE
  }
  return runscope::runscoped::run_daemon(args);
}
