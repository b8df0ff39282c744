#include "nomad/log.hpp"

#include <unistd.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include <ctime>

namespace runscope::nomad {
namespace {

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "info";
}

}  // namespace

std::string log_timestamp(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char text[40];
  auto n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + n, sizeof text - n, ".%06lldZ", static_cast<long long>(us % 1000000));
  return text;
}

std::string format_log_line(LogLevel level, std::string_view message, LogFields fields, std::string_view timestamp) {
  nlohmann::json line = {{"@level", level_name(level)}, {"@message", message}, {"@timestamp", timestamp},
                         {"@module", "runscope-nomad-driver"}};
  for (const auto& [key, value] : fields) line[std::string(key)] = value;
  // Text from a task or the daemon may not be UTF-8: replace, never throw from the logger.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void log(LogLevel level, std::string_view message, LogFields fields) {
  auto text = format_log_line(level, message, fields, log_timestamp(std::chrono::system_clock::now()));
  // One write per line, so lines from several threads never interleave.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, text.data(), text.size());
}

}  // namespace runscope::nomad
