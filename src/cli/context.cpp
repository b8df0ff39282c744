#include "cli/context.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace runscope::cli {

config::Config load(const Globals& globals) { return config::load_config(globals.config_path, globals.config_given); }

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_st("runscope");
  logger->set_pattern("runscope: [%l] %v");
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw Error(ErrorKind::invalid_argument, "--log-level: unknown level '" + level + "'");
  }
  logger->set_level(parsed);
  spdlog::set_default_logger(std::move(logger));
}

int exit_code_for(const Error& error) {
  switch (error.kind()) {
    case ErrorKind::invalid_argument: return kExitUsage;
    case ErrorKind::config: return config::kExitConfig;
    case ErrorKind::unsupported: return kExitUnavailable;
    case ErrorKind::not_found: return kExitNotFound;
    case ErrorKind::permission: return kExitCannotRun;
    default: return kExitFailure;
  }
}

int report(const std::exception& error) {
  std::fprintf(stderr, "runscope: %s\n", error.what());
  if (auto* e = dynamic_cast<const Error*>(&error)) return exit_code_for(*e);
  return kExitFailure;
}

}  // namespace runscope::cli
