#include "daemon/notify.hpp"

#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>

namespace runscope::daemon {

void Notifier::send(const std::string& message) {
  int r = ::sd_notify(0, message.c_str());
  if (r < 0) spdlog::warn("sd_notify({}) failed: {}", message, r);
}

void Notifier::ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }
void Notifier::status(const std::string& status) { send("STATUS=" + status); }
void Notifier::reloading() { send("RELOADING=1"); }
void Notifier::ready_again() { send("READY=1"); }
void Notifier::stopping() { send("STOPPING=1\nSTATUS=stopping; tasks keep running"); }
void Notifier::watchdog() { send("WATCHDOG=1"); }

std::optional<Duration> Notifier::watchdog_interval() const {
  std::uint64_t usec = 0;
  if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

}  // namespace runscope::daemon
