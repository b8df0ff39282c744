// A stand-in for runscope-shim in TaskManager tests: each "shim" is a paused child of the test,
// which ends it the way a real shim ends (exit.json written, then the process gone).
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
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

  LaunchedShim launch(const std::filesystem::path& dir, cgroup::TaskCgroup& cg, const Deadline&) override {
    if (fail) throw Error(ErrorKind::not_found, "cannot execute 'nope': No such file or directory");
    pid_t pid = ::fork();
    if (pid == 0) {
      for (;;) ::pause();
    }
    LaunchedShim s;
    s.pid = s.task_pid = pid;
    s.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    s.start_time = driver::process_start_time(pid).value_or(0);
    shims.push_back({pid, dir, cg.location()});
    return s;
  }

  // Shim `i`'s task "exits" with `code`: the shim records it and ends.
  void end(std::size_t i, int code = 0) {
    driver::write_exit_record(shims.at(i).dir,
                              {driver::ExitStatus{false, code}, shims[i].pid, std::chrono::system_clock::now()});
    ::kill(shims[i].pid, SIGKILL);
  }

  bool fail = false;  // launch() throws as a shim that cannot exec its task would
  std::vector<Shim> shims;
};

}  // namespace runscope::daemon
