// `runscope run [options] -- CMD [ARG...]` or `runscope run --file TASK.toml`: hand a task to
// runscoped. Detached by default (prints "ALLOC TASK"); `--wait` follows its TaskStateChanged
// signals and exits with the task's code (128+N for signal N).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.hpp"

namespace runscope::cli {

Command add_run(CLI::App& app, const Globals& globals);

}  // namespace runscope::cli
