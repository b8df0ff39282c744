// Host-test helpers: a child process held on a pipe before it execs `/bin/sh -c SCRIPT` (the way
// the task runner holds a v1 child until place() returns), optionally started straight inside a
// cgroup2 folder with clone3(CLONE_INTO_CGROUP); and checks for processes that survived a kill.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "common/fd.hpp"

namespace runscope::testing {

class HeldChild {
 public:
  // cgroup_fd >= 0: clone3 into that cgroup2 folder; otherwise a plain fork.
  explicit HeldChild(const std::string& script, int cgroup_fd = -1);
  ~HeldChild();  // SIGKILLs and reaps the child if still there
  HeldChild(const HeldChild&) = delete;
  HeldChild& operator=(const HeldChild&) = delete;

  pid_t pid() const { return pid_; }
  void release();  // lets it exec the script
  int wait();      // waitpid; returns the raw status

 private:
  pid_t pid_ = -1;
  UniqueFd gate_;  // write end; one byte (or EOF) releases the child
};

bool is_root();
// Alive = exists and is not a zombie.
bool process_alive(pid_t pid);
// Makes this process the reaper of orphans its children leave, so tests can reap them.
void become_subreaper();
// Reaps every exited child or adopted orphan without blocking.
void reap_zombies();
// Polls `done` every few ms on the real clock until true or `budget` passes.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds budget);

// The kernel's view of where `pid` may run (`Cpus_allowed_list` in /proc/PID/status); "?" if gone.
std::string cpus_allowed(pid_t pid);

}  // namespace runscope::testing
