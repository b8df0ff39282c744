// `runscope fingerprint [--json]`: what this host offers, as sorted key=value lines.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <string>

#include "cgroup/host.hpp"
#include "cli/context.hpp"

namespace runscope::cli {

// The facts, keyed as printed; `manager` is what `auto`/config choose on this host.
std::map<std::string, std::string> fingerprint_facts(const cgroup::Probe& probe, std::string_view manager);

Command add_fingerprint(CLI::App& app, const Globals& globals);

}  // namespace runscope::cli
