// The documented effect of each class of signal on `runscope exec` (cli/exec_signals.hpp), and
// what a SIGKILL of exec leaves for `runscope orphans`, as checks every layer runs against its own
// path: --no-cgroups (unit), cgroupfs v1 and v2 (host), the contained systemd (systemd). Each
// check starts the built binary and asserts with gtest; the caller's teardown asserts that no
// process or cgroup is left.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "support/runscope_cli.hpp"

namespace runscope::testing {

// `runscope` as a job-control shell starts a job: in a process group of its own, inside a
// session whose leader (a stand-in for the shell) is its parent. So its group is not orphaned,
// and a SIGTSTP may stop it. Output goes to the RunscopeCli's files.
class ShellJob {
 public:
  ShellJob(RunscopeCli& cli, const std::vector<std::string>& args);
  ~ShellJob();  // whatever is left is SIGKILLed and reaped
  ShellJob(const ShellJob&) = delete;
  ShellJob& operator=(const ShellJob&) = delete;

  pid_t pid() const { return runscope_; }
  int wait();  // runscope's exit code (the stand-in passes it on)

 private:
  pid_t leader_ = -1;
  pid_t runscope_ = -1;
};

// Field 3 of /proc/PID/stat ('R', 'S', 'T', ...); '?' when the process is gone.
char process_state(pid_t pid);

struct ExecUnderTest {
  RunscopeCli& cli;
  std::vector<std::string> globals;  // before the command: e.g. {"--config", PATH}
  std::vector<std::string> exec;     // after "exec", before "--": e.g. {"--cgroupfs-v2"}

  std::vector<std::string> args(const std::vector<std::string>& options, const std::string& script) const;
  std::vector<std::string> command(const std::vector<std::string>& words) const;  // globals + words
  // A file in the test folder the task records pids in; *.pids files are checked by host teardowns.
  std::string pids_file(const std::string& name) const;
};

// INT, TERM, HUP, QUIT: the task gets kill_signal (its TERM trap runs) and exec exits with its code.
void check_stop_signal_stops_gracefully(const ExecUnderTest& t, int sig);
// A second stop signal during the grace period kills everything at once.
void check_second_stop_signal_kills_at_once(const ExecUnderTest& t);
// Each of `sigs` reaches the task's main process, which keeps running.
void check_signals_are_forwarded(const ExecUnderTest& t, const std::vector<int>& sigs);
// TSTP/TTIN/TTOU to exec in an orphaned process group: dropped; the task keeps running.
void check_job_control_dropped_when_orphaned(const ExecUnderTest& t, int sig);
// TSTP/TTIN/TTOU to exec as a shell's job: the task's group stops, then exec; SIGCONT resumes both.
void check_job_control_stops_and_resumes(const ExecUnderTest& t, int sig);
// SIGKILL of exec leaves the task; `runscope orphans` lists it, `orphans --kill` ends it.
void check_sigkill_leaves_an_orphan_that_orphans_ends(const ExecUnderTest& t, const std::string& alloc);

}  // namespace runscope::testing
