// The subcommands that talk to runscoped (one .cpp each), over api::ManagerClient.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.hpp"

namespace runscope::cli {

Command add_stop(CLI::App& app, const Globals& globals);     // stop.cpp
Command add_kill(CLI::App& app, const Globals& globals);     // kill.cpp
Command add_signal(CLI::App& app, const Globals& globals);   // signal.cpp
Command add_ps(CLI::App& app, const Globals& globals);       // ps.cpp
Command add_inspect(CLI::App& app, const Globals& globals);  // inspect.cpp
Command add_stats(CLI::App& app, const Globals& globals);    // stats.cpp
Command add_logs(CLI::App& app, const Globals& globals);     // logs.cpp
Command add_cpus(CLI::App& app, const Globals& globals);     // cpus.cpp
Command add_enter(CLI::App& app, const Globals& globals);    // enter.cpp

}  // namespace runscope::cli
