// A stand-in for runscope-shim in TaskManager tests: each "shim" is a paused child of the test,
// which ends it the way a real shim ends (exit.json written, then the process gone). It speaks the
// control protocol's last word at once: "started PID" (or "failed ..." when told to fail).
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "daemon/shim_launcher.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {

class PausedShims final : public ShimLauncher {
 public:
  struct Shim {
    pid_t pid;
    std::filesystem::path dir;
    std::string cgroup;  // where the task's cgroup was when it started
  };

  SpawnedShim spawn(const std::filesystem::path& dir, const cgroup::TaskCgroup& cg) override {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) throw_system_error("socketpair");
    UniqueFd ours(sv[0]), theirs(sv[1]);
    pid_t pid = ::fork();
    if (pid < 0) throw_system_error("fork");
    if (pid == 0) {
      for (;;) ::pause();
    }
    SpawnedShim s;
    s.pid = pid;
    s.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    s.control = std::move(ours);
    std::lock_guard lock(mutex_);
    if (hold) {
      held_.push_back({Shim{pid, dir, cg.location()}, std::move(theirs)});
    } else if (fail) {
      // As a shim that cannot exec its task: kind 2 is not_found.
      driver::send_message(theirs.get(), "failed 2 cannot execute 'nope': No such file or directory");
    } else {
      driver::send_message(theirs.get(), "started " + std::to_string(pid));
      shims.push_back({pid, dir, cg.location()});
    }
    return s;
  }

  // Shim `i`'s task "exits" with `code`: the shim records it and ends.
  void end(std::size_t i, int code = 0) {
    Shim shim;
    {
      std::lock_guard lock(mutex_);
      shim = shims.at(i);
    }
    driver::write_exit_record(shim.dir, {driver::ExitStatus{false, code}, shim.pid, std::chrono::system_clock::now()});
    ::kill(shim.pid, SIGKILL);
  }

  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return shims.size();
  }
  std::size_t held() const {
    std::lock_guard lock(mutex_);
    return held_.size();
  }
  // The held shims say "started" now (and count as started from here on).
  void release() {
    std::lock_guard lock(mutex_);
    for (auto& [shim, channel] : held_) {
      try {
        driver::send_message(channel.get(), "started " + std::to_string(shim.pid));
        shims.push_back(shim);
      } catch (const Error&) {
        // The manager gave up on it (and killed it) already.
      }
    }
    held_.clear();
  }

  bool fail = false;  // the "shim" reports that it cannot exec its task
  bool hold = false;  // the "shim" waits for release() before it says "started"
  std::vector<Shim> shims;

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<Shim, UniqueFd>> held_;
};

}  // namespace runscope::daemon
