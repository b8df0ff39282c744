// Which bus runscoped and the CLI talk on: `--bus system|session|ADDRESS`, else $RUNSCOPE_BUS,
// else the system bus. A private address lets tests (and hosts without a system bus) run both
// ends on a dbus-daemon of their own.
#pragma once

#include <memory>
#include <optional>
#include <string>

namespace sdbus {
class IConnection;
}

namespace runscope::api {

inline constexpr const char* kBusEnv = "RUNSCOPE_BUS";

// The option value if given, else $RUNSCOPE_BUS if set and not empty, else "system".
std::string resolve_bus(const std::string& option);

// Connects to "system", "session" or a D-Bus address ("unix:path=..."). Throws
// Error(unsupported) naming the bus when it can't be reached.
std::unique_ptr<sdbus::IConnection> connect_bus(const std::string& bus);

}  // namespace runscope::api
