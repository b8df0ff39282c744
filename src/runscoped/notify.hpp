// The daemon's side of systemd's notify protocol (Type=notify): READY=1 with a STATUS= line once
// it serves, RELOADING=1/STOPPING=1 around SIGHUP/SIGTERM, and WATCHDOG=1 at half the interval
// the unit asks for. Without $NOTIFY_SOCKET every call is a no-op, so the same binary runs under
// systemd, in tests (which point NOTIFY_SOCKET at a socket they read) and by hand.
#pragma once

#include <optional>
#include <string>

#include "common/units.hpp"

namespace runscope::runscoped {

class Notifier {
 public:
  void ready(const std::string& status);
  void status(const std::string& status);
  void reloading();
  void ready_again(const std::string& status);  // after a reload
  void stopping();
  void watchdog();
  // Half of $WATCHDOG_USEC when the unit set WatchdogSec= (and it is meant for this pid).
  std::optional<Duration> watchdog_interval() const;

 private:
  void send(const std::string& message);
};

}  // namespace runscope::runscoped
