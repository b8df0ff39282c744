#include "runscoped/notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>

#include <spdlog/spdlog.h>

namespace runscope::runscoped {

void Notifier::send(const std::string& message) {
  int r = ::sd_notify(0, message.c_str());
  if (r < 0) spdlog::warn("sd_notify({}) failed: {}", message, r);
}

void Notifier::ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }
void Notifier::status(const std::string& status) { send("STATUS=" + status); }
// MONOTONIC_USEC: what Type=notify-reload (systemd 253+) requires with RELOADING=1; older
// systemd ignores it.
void Notifier::reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  send("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=" + std::to_string(usec));
}
void Notifier::ready_again(const std::string& status) { send("READY=1\nSTATUS=" + status); }
void Notifier::stopping() { send("STOPPING=1\nSTATUS=stopping; tasks keep running"); }
void Notifier::watchdog() { send("WATCHDOG=1"); }

std::optional<Duration> Notifier::watchdog_interval() const {
  std::uint64_t usec = 0;
  if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

}  // namespace runscope::runscoped
