// A real runscoped for host tests: its own temp config and state dir, a private bus, and a
// NOTIFY_SOCKET the test reads, so "ready" means the daemon said READY=1.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/fd.hpp"
#include "driver/process.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::testing {

// A unix datagram socket in `dir` that sd_notify can send to.
class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& dir);
  const std::string& path() const { return path_; }
  // Waits for a datagram containing `text`; returns (and forgets) every datagram seen so far,
  // or nullopt at the deadline.
  std::optional<std::string> wait_for(const std::string& text, std::chrono::seconds budget);

 private:
  std::string path_;
  UniqueFd fd_;
  std::string seen_;
};

class DaemonProcess {
 public:
  // Starts `runscoped --bus ADDRESS --config CONFIG` with NOTIFY_SOCKET set; output to `log`;
  // inside `cgroup` from its first instruction when given (a service's cgroup stand-in).
  DaemonProcess(const std::string& bus, const std::filesystem::path& config, const std::filesystem::path& log,
                NotifySocket& notify, const std::vector<std::string>& extra_env = {},
                cgroup::TaskCgroup* cgroup = nullptr);
  ~DaemonProcess();  // SIGTERM, then SIGKILL if it lingers; reaped
  driver::Process& process() { return process_; }
  // SIGTERM and wait for the exit status (deadline 30 s).
  std::optional<driver::ExitStatus> terminate();

 private:
  driver::Process process_;
};

}  // namespace runscope::testing
