#include "cli/exec_signals.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/error.hpp"

namespace runscope::cli {
namespace {

// The last standard signal; 32 and 33 (up to SIGRTMIN) belong to glibc's threads.
constexpr int kLastStandardSignal = 31;

bool catchable(int sig) { return sig != SIGKILL && sig != SIGSTOP && (sig <= kLastStandardSignal || sig >= SIGRTMIN); }

// The signals we were started with ignored: /proc/self/status "SigIgn" (one read, where asking
// sigaction() for each signal costs 62 calls on every run).
std::uint64_t ignored_at_start() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("SigIgn:")) return std::strtoull(line.c_str() + 7, nullptr, 16);
  }
  return 0;
}

std::string name_of(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

int poll_timeout_ms(const Deadline* grace) {
  if (grace == nullptr) return -1;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(grace->remaining()).count());
}

// Whether a job-control shell could resume our process group: our parent (the shell) is in our
// session but in another group. (POSIX: a group is orphaned when no member's parent is in the
// same session but another group; the members of a job share the shell as parent.)
bool own_group_orphaned() {
  const pid_t parent = ::getppid();
  return ::getsid(parent) != ::getsid(0) || ::getpgid(parent) == ::getpgrp();
}

// One supervision: the grace period of a stop in progress, and job control.
class Supervision {
 public:
  explicit Supervision(driver::RunningTask& task) : task_(task) {}

  // Returns the task's status once a signal ended it (a second stop signal).
  std::optional<driver::ExitStatus> on_signal(const ForegroundSignals::Received& r) {
    if (r.sender == ::getpid()) return std::nullopt;  // our own: SIGPIPE on a closed stderr, ...
    switch (action_for(r.signo)) {
      case SignalAction::stop:
        if (!stopping_) {
          spdlog::warn("received {}: stopping task {}", name_of(r.signo), task_.id().display());
          grace_ = task_.begin_stop();
          stopping_ = true;
          return std::nullopt;
        }
        spdlog::warn("received {} again: killing task {} now", name_of(r.signo), task_.id().display());
        return task_.kill_now();
      case SignalAction::job_control:
        job_control(r.signo);
        return std::nullopt;
      case SignalAction::forward:
        if (r.signo == SIGCONT && swallow_cont_) {
          swallow_cont_ = false;  // the SIGCONT that resumed us: the group is resumed already
        } else {
          task_.signal_main(r.signo);
        }
        return std::nullopt;
      case SignalAction::internal:
        return std::nullopt;  // SIGCHLD: the task's end is read from its pidfd
    }
    return std::nullopt;
  }

  // The end of the grace period while a graceful stop is under way, else null.
  const Deadline* grace() const { return stopping_ ? &grace_ : nullptr; }

 private:
  // The kernel drops TSTP/TTIN/TTOU for an orphaned process group (no job-control shell could
  // resume it), and so do we. Otherwise the task's group stops with SIGSTOP, not the signal
  // itself: the task has no terminal to hand back (its own session), and its group, orphaned
  // too, would have the default action dropped. Then we stop, as the job the shell sees; SIGSTOP
  // can't be refused, so no stop of ours leaves the task running.
  void job_control(int sig) {
    if (own_group_orphaned()) {
      spdlog::debug("received {}: dropped (runscope's process group is orphaned)", name_of(sig));
      return;
    }
    spdlog::debug("received {}: stopping the task's process group, then runscope", name_of(sig));
    task_.signal_group(SIGSTOP);
    ForegroundSignals::stop_self(sig);
    spdlog::debug("continued: resuming the task's process group");
    task_.signal_group(SIGCONT);
    sigset_t pending;
    // The SIGCONT that resumed us waits in the signalfd: the group has it already.
    swallow_cont_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGCONT) == 1;
  }

  driver::RunningTask& task_;
  bool stopping_ = false;
  Deadline grace_{system_clock(), Duration::zero()};
  bool swallow_cont_ = false;
};

}  // namespace

SignalAction action_for(int sig) {
  switch (sig) {
    case SIGINT:
    case SIGTERM:
    case SIGHUP:
    case SIGQUIT: return SignalAction::stop;
    case SIGTSTP:
    case SIGTTIN:
    case SIGTTOU: return SignalAction::job_control;
    case SIGCHLD: return SignalAction::internal;
    default: return SignalAction::forward;
  }
}

ForegroundSignals::ForegroundSignals() {
  sigemptyset(&set_);
  const std::uint64_t ignored = ignored_at_start();
  for (int sig = 1; sig <= SIGRTMAX; ++sig) {
    if (!catchable(sig)) continue;
    // Ignored by whoever started us (nohup): it stays ignored. SIGCHLD never: ignoring it would
    // let the kernel reap the task before we read its status.
    if (sig == SIGCHLD) {
      if (ignored & (1ULL << (SIGCHLD - 1))) ::signal(SIGCHLD, SIG_DFL);
    } else if (ignored & (1ULL << (sig - 1))) {
      continue;
    }
    sigaddset(&set_, sig);
  }
  if (::sigprocmask(SIG_BLOCK, &set_, &old_) != 0) throw_system_error("sigprocmask");
  fd_ = UniqueFd(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd_) throw_system_error("signalfd");
}

ForegroundSignals::~ForegroundSignals() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }

std::optional<ForegroundSignals::Received> ForegroundSignals::take() {
  signalfd_siginfo info{};
  ssize_t n;
  do {
    n = ::read(fd_.get(), &info, sizeof info);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof info)) return std::nullopt;
  return Received{static_cast<int>(info.ssi_signo), static_cast<pid_t>(info.ssi_pid)};
}

void ForegroundSignals::stop_self(int sig) {
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ::kill(::getpid(), sig);
  // Delivered as the mask opens: its default action stops us here until SIGCONT. (In an
  // orphaned process group the kernel drops it, and we simply go on.)
  ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
  ::sigprocmask(SIG_BLOCK, &one, nullptr);
}

driver::ExitStatus supervise(driver::RunningTask& task, ForegroundSignals& signals) {
  Supervision supervision(task);
  for (;;) {
    pollfd fds[2] = {{task.pidfd(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
    const int n = ::poll(fds, 2, poll_timeout_ms(supervision.grace()));
    if (n < 0 && errno != EINTR) throw_system_error("poll");
    if (n > 0 && fds[0].revents != 0) return task.wait();
    if (supervision.grace() && supervision.grace()->expired()) return task.kill_now();
    if (n > 0 && fds[1].revents != 0) {
      while (auto received = signals.take()) {
        if (auto ended = supervision.on_signal(*received)) return *ended;
      }
    }
  }
}

}  // namespace runscope::cli
