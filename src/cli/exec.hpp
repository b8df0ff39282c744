// `runscope exec [options] -- CMD [ARG...]`: run CMD in a fresh cgroup in the foreground, turn
// SIGINT/SIGTERM into a graceful stop, exit with CMD's code (128+N for signal N).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.hpp"

namespace runscope::cli {

Command add_exec(CLI::App& app, const Globals& globals);

}  // namespace runscope::cli
