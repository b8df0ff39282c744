// A started child process owned through its pidfd: signalled with pidfd_send_signal, waited on
// with poll + waitid(P_PIDFD), so a recycled pid can never be signalled or reaped by mistake.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/clock.hpp"
#include "common/fd.hpp"

namespace runscope::driver {

// How a process ended: an exit code, or the signal that killed it.
struct ExitStatus {
  bool signaled = false;
  int value = 0;  // exit code, or signal number when signaled

  // The shell convention: the exit code, or 128 + N for signal N.
  int shell_code() const { return signaled ? 128 + value : value; }
  std::string describe() const;  // "exit code 3" / "signal 9 (SIGKILL)"
  bool operator==(const ExitStatus&) const = default;
};

class Process {
 public:
  Process() = default;
  Process(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // A process still unreaped is SIGKILLed and reaped: nothing outlives its owner by accident.
  ~Process();

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  bool valid() const { return pidfd_.valid(); }
  bool reaped() const { return status_.has_value(); }
  const std::optional<ExitStatus>& status() const { return status_; }

  // Sends `sig`; false when the process has already exited. Throws Error(system) otherwise.
  bool signal(int sig);

  // Waits until the process has exited WITHOUT reaping it: the zombie keeps its pid and its
  // process group from being reused. False when the deadline passes first.
  bool wait_exited(const Deadline& deadline);

  // Reaps the process, blocking until it exits; returns the cached status when already reaped.
  ExitStatus reap();

  // wait_exited + reap; nullopt at the deadline.
  std::optional<ExitStatus> wait(const Deadline& deadline);

 private:
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::optional<ExitStatus> status_;
};

}  // namespace runscope::driver
