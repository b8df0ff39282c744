#include "api/bus.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "common/error.hpp"

namespace runscope::api {
namespace {

constexpr std::string_view kUnixPath = "unix:path=";
constexpr const char* kDefaultSystemBus = "unix:path=/run/dbus/system_bus_socket";

// sdbus-c++ 1.2 leaks its sd_bus when a connection fails, so the common failure, no socket at
// all, is caught before asking it (as systemd/bus_link.cpp does).
void check_socket_exists(const std::string& bus, const std::string& address) {
  if (!address.starts_with(kUnixPath)) return;
  auto path = address.substr(kUnixPath.size(), address.find(',') - kUnixPath.size());
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorKind::unsupported, "cannot connect to the " + bus + " bus: no D-Bus socket at " + path);
  }
}

std::string address_of(const std::string& bus) {
  const char* env = nullptr;
  if (bus == "system") env = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
  else if (bus == "session") env = std::getenv("DBUS_SESSION_BUS_ADDRESS");
  else return bus;
  if (env != nullptr && *env != '\0') return env;
  return bus == "system" ? kDefaultSystemBus : "";
}

}  // namespace

std::string resolve_bus(const std::string& option) {
  if (!option.empty()) return option;
  const char* env = std::getenv(kBusEnv);
  if (env != nullptr && *env != '\0') return env;
  return "system";
}

std::unique_ptr<sdbus::IConnection> connect_bus(const std::string& bus) {
  check_socket_exists(bus, address_of(bus));
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
