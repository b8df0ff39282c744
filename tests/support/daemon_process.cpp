#include "support/daemon_process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <utility>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "driver/spawn.hpp"

extern char** environ;

namespace runscope::testing {

NotifySocket::NotifySocket(const std::filesystem::path& dir) : path_((dir / "notify").string()) {
  fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd_) throw_system_error("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw_system_error("bind " + path_);
}

std::optional<std::string> NotifySocket::wait_for(const std::string& text, std::chrono::seconds budget) {
  SteadyClock clock;
  Deadline deadline(clock, budget);
  while (seen_.find(text) == std::string::npos) {
    if (deadline.expired()) return std::nullopt;
    pollfd p{fd_.get(), POLLIN, 0};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining()).count();
    if (::poll(&p, 1, static_cast<int>(ms) + 1) <= 0) continue;
    char buf[4096];
    auto n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) seen_.append(buf, static_cast<std::size_t>(n)).push_back('\n');
  }
  return std::exchange(seen_, {});  // the next wait_for waits for a new message
}

DaemonProcess::DaemonProcess(const std::string& bus, const std::filesystem::path& config,
                             const std::filesystem::path& log, NotifySocket& notify,
                             const std::vector<std::string>& extra_env, cgroup::TaskCgroup* cgroup) {
  driver::SpawnSpec spec;
#ifndef RUNSCOPED_BINARY
  throw Error(ErrorKind::not_found, "runscoped was not built");
#define RUNSCOPED_BINARY ""
#endif
  spec.argv = {RUNSCOPED_BINARY, "--bus", bus, "--config", config.string()};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) spec.env.emplace_back(*e);
  }
  spec.env.push_back("NOTIFY_SOCKET=" + notify.path());
  spec.env.insert(spec.env.end(), extra_env.begin(), extra_env.end());
  spec.stdout_path = log;
  spec.stderr_path = log;
  driver::CloneSpawner spawner;
  process_ = spawner.spawn(spec, cgroup);
}

std::optional<driver::ExitStatus> DaemonProcess::terminate() {
  if (process_.reaped()) return process_.status();
  process_.signal(SIGTERM);
  SteadyClock clock;
  return process_.wait(Deadline(clock, std::chrono::seconds(30)));
}

DaemonProcess::~DaemonProcess() {
  try {
    if (!terminate()) {
      process_.signal(SIGKILL);
      process_.reap();
    }
  } catch (const std::exception&) {
    // the Process destructor kills and reaps what is left
  }
}

}  // namespace runscope::testing
