#include "driver/process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/error.hpp"

namespace runscope::driver {
namespace {

// Real time slept per poll at most, so a fake clock in tests still gets asked for the time.
constexpr std::chrono::milliseconds kPollSlice{50};

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

ExitStatus status_from(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return ExitStatus{false, info.si_status};
  return ExitStatus{true, info.si_status};
}

}  // namespace

std::string ExitStatus::describe() const {
  if (!signaled) return "exit code " + std::to_string(value);
  const char* abbrev = ::sigabbrev_np(value);
  return "signal " + std::to_string(value) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

Process::~Process() { kill_and_reap(); }

void Process::kill_and_reap() noexcept {
  if (!pidfd_.valid() || status_) return;
  pidfd_send_signal(pidfd_.get(), SIGKILL);
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) != 0 &&
         errno == EINTR) {
  }
}

bool Process::signal(int sig) {
  if (status_) return false;
  if (pidfd_send_signal(pidfd_.get(), sig) == 0) return true;
  if (errno == ESRCH) return false;
  throw_system_error("pidfd_send_signal(pid " + std::to_string(pid_) + ", signal " + std::to_string(sig) + ")");
}

bool Process::wait_exited(const Deadline& deadline) {
  if (status_) return true;
  for (;;) {
    auto slice = std::min<std::chrono::nanoseconds>(deadline.remaining(), kPollSlice);
    pollfd pfd{pidfd_.get(), POLLIN, 0};
    int timeout_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(slice).count());
    int r = ::poll(&pfd, 1, timeout_ms);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) throw_system_error("poll(pidfd of pid " + std::to_string(pid_) + ")");
    if (deadline.expired()) return false;
  }
}

ExitStatus Process::reap() {
  if (status_) return *status_;
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) != 0) {
    if (errno != EINTR) throw_system_error("waitid(pid " + std::to_string(pid_) + ")");
  }
  status_ = status_from(info);
  return *status_;
}

std::optional<ExitStatus> Process::wait(const Deadline& deadline) {
  if (!wait_exited(deadline)) return std::nullopt;
  return reap();
}

}  // namespace runscope::driver
