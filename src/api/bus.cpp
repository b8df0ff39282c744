#include "api/bus.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <cstdlib>

#include "common/error.hpp"

namespace runscope::api {

std::string resolve_bus(const std::string& option) {
  if (!option.empty()) return option;
  const char* env = std::getenv(kBusEnv);
  if (env != nullptr && *env != '\0') return env;
  return "system";
}

std::unique_ptr<sdbus::IConnection> connect_bus(const std::string& bus) {
  try {
    if (bus == "system") return sdbus::createSystemBusConnection();
    if (bus == "session") return sdbus::createSessionBusConnection();
    if (bus.find(':') == std::string::npos) {
      throw Error(ErrorKind::invalid_argument,
                  "--bus: '" + bus + "' is not system, session or a D-Bus address (unix:path=...)");
    }
    return sdbus::createSessionBusConnectionWithAddress(bus);
  } catch (const sdbus::Error& e) {
    throw Error(ErrorKind::unsupported, "cannot connect to the " + bus + " bus: " + e.getMessage());
  }
}

}  // namespace runscope::api
