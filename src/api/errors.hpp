// runscope::Error kinds <-> named D-Bus errors of org.runscope1, both ways, so the CLI can turn a
// daemon's error back into the same exit code `exec` would give.
#pragma once

#include <string>

#include "common/error.hpp"

namespace runscope::api {

inline constexpr const char* kBusName = "org.runscope1";
inline constexpr const char* kObjectPath = "/org/runscope1";
inline constexpr const char* kInterface = "org.runscope1.Manager";
inline constexpr const char* kErrorPrefix = "org.runscope1.Error.";

// "org.runscope1.Error.InvalidSpec" etc.
std::string error_name(ErrorKind kind);
// Unknown names (a bus or systemd error) map to ErrorKind::bus.
ErrorKind error_kind(const std::string& name);

}  // namespace runscope::api
