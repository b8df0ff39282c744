// runscoped as a process: configuration, the host's backend and cpusets, the TaskManager with
// its recovered tasks, the bus object under org.runscope1, the notify protocol, and the signals
// (SIGHUP reloads, SIGTERM/SIGINT stop serving and leave tasks running).
#pragma once

#include <filesystem>
#include <string>

#include "config/config.hpp"

namespace runscope::runscoped {

struct DaemonArgs {
  std::filesystem::path config_path = config::kDefaultPath;
  bool config_given = false;
  std::string bus;  // system, session or an address; empty: $RUNSCOPE_BUS, else system
};

// Runs until SIGTERM/SIGINT; returns the process exit code (78 for a bad config, with nothing
// touched; 69 when the host or the bus lacks what is needed; 1 for other start-up failures).
int run_daemon(const DaemonArgs& args);

}  // namespace runscope::runscoped
