// What `runscope exec` does with every signal it can catch, on every path (docs/cli.md,
// "Signals"). The task runs in its own session, so the terminal's signals reach runscope only;
// runscope gives each a defined effect, and never ends while the task or its cgroup is left:
//   stop         INT TERM HUP QUIT: the graceful stop (kill_signal, then the cgroup kill after
//                kill_timeout); a second one during the grace period kills at once
//   job control  TSTP TTIN TTOU: the task's process group stops (SIGSTOP), as a foreground job
//                does, and runscope stops itself with the same signal (the shell sees a stopped
//                job); its SIGCONT (`fg`, `bg`) resumes the whole group. In an orphaned process
//                group, where the kernel drops these signals, they are dropped
//   forward      everything else (USR1 USR2 WINCH CONT ALRM PIPE URG PWR VTALRM PROF XCPU XFSZ
//                STKFLT IO SYS TRAP ABRT BUS FPE ILL SEGV and the real-time signals) goes to the
//                task's main process
//   internal     CHLD: not passed on (the task's end is read from its pidfd)
// A signal runscope sends itself (SIGPIPE from a closed stderr) is not passed on; a signal
// runscope was started with ignored (`nohup`: HUP) stays ignored.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <optional>

#include "common/fd.hpp"
#include "driver/runner.hpp"

namespace runscope::cli {

enum class SignalAction { stop, job_control, forward, internal };
SignalAction action_for(int sig);

// Blocks every catchable signal (before any thread exists, so all threads inherit the mask; the
// spawner gives the task a clean mask and default dispositions) and reads them from a signalfd.
class ForegroundSignals {
 public:
  ForegroundSignals();
  ~ForegroundSignals();  // the old mask back
  ForegroundSignals(const ForegroundSignals&) = delete;
  ForegroundSignals& operator=(const ForegroundSignals&) = delete;

  struct Received {
    int signo;
    pid_t sender;  // 0 when the kernel sent it
  };
  int fd() const { return fd_.get(); }
  std::optional<Received> take();  // non-blocking

  // Stops runscope itself with `sig` (blocked, so raised and let through once), returning when
  // it is continued.
  static void stop_self(int sig);

 private:
  sigset_t set_{}, old_{};
  UniqueFd fd_;
};

// Serves signals until the task has ended and its cgroup is gone; returns how its main process
// ended. The caller's RunningTask::stop_requested() tells whether a stop signal ended it.
driver::ExitStatus supervise(driver::RunningTask& task, ForegroundSignals& signals);

}  // namespace runscope::cli
