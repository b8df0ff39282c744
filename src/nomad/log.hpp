// The plugin's log: one hclog JSON object per line on stderr, which the Nomad agent re-logs at the
// same level (`@level`, `@message`, `@timestamp`, then the fields as key/value pairs). stdout is
// reserved for the handshake line.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace runscope::nomad {

enum class LogLevel { trace, debug, info, warn, error };

using LogFields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

void log(LogLevel level, std::string_view message, LogFields fields = {});

// go-plugin parses `@timestamp` with the layout 2006-01-02T15:04:05.000000Z07:00 (microseconds,
// UTC as Z) and drops a line it can't parse to debug level.
std::string log_timestamp(std::chrono::system_clock::time_point t);

// The same line as text, for tests.
std::string format_log_line(LogLevel level, std::string_view message, LogFields fields, std::string_view timestamp);

}  // namespace runscope::nomad
