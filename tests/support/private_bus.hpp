// A dbus-daemon of the test's own, on a socket in a temp folder, so bus tests never touch the
// host's buses. The default config lets everyone call and own anything (a session bus); the
// policy tests pass a system-like config instead.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "support/driver_fakes.hpp"

namespace runscope::testing {

class PrivateBus {
 public:
  // `config_body`: the <busconfig> children besides <listen>; empty: allow everything.
  explicit PrivateBus(const std::string& config_body = "");
  ~PrivateBus();  // SIGTERMs and reaps the dbus-daemon
  PrivateBus(const PrivateBus&) = delete;
  PrivateBus& operator=(const PrivateBus&) = delete;

  const std::string& address() const { return address_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string socket_path() const { return (dir_.path() / "bus").string(); }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  std::string address_;
};

bool dbus_daemon_available();

}  // namespace runscope::testing
