// `runscope orphans [--kill] [--json]`: tasks left running by a `runscope exec` that was killed
// with SIGKILL (see exec_registry.hpp), listed, or ended with --kill.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.hpp"

namespace runscope::cli {

Command add_orphans(CLI::App& app, const Globals& globals);

}  // namespace runscope::cli
