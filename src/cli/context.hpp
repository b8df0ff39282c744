// What every subcommand shares: the global options, the config, logging, and how errors become
// one line on stderr and an exit code.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "common/error.hpp"
#include "config/config.hpp"

namespace CLI {
class App;
}

namespace runscope::cli {

// Exit codes of runscope itself (a command's own code passes through `exec` unchanged).
inline constexpr int kExitUsage = 64;        // EX_USAGE: bad options or values
inline constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: the host lacks what was asked
inline constexpr int kExitFailure = 125;     // runscope failed (as `env`, `docker run`)
inline constexpr int kExitCannotRun = 126;   // the command cannot be run: not executable, uid denied
inline constexpr int kExitNotFound = 127;    // the command does not exist

struct Globals {
  std::filesystem::path config_path = config::kDefaultPath;
  bool config_given = false;
  std::string log_level = "warn";
  std::string bus;  // --bus: system, session or an address; empty: $RUNSCOPE_BUS, else system
};

// A subcommand: its CLI11 node, and what runs when it was given.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

config::Config load(const Globals& globals);
void setup_logging(const std::string& level);  // spdlog to stderr

int exit_code_for(const Error& error);
// Prints "runscope: <message>" on stderr and returns the exit code.
int report(const std::exception& error);

}  // namespace runscope::cli
