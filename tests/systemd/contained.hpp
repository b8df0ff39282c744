// Helpers for tests that run inside the contained systemd (run-contained.sh sets
// RUNSCOPE_CONTAINED_SYSTEMD=1 and runs them as a service of that systemd).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "common/fd.hpp"

namespace runscope::systemd_testing {

bool inside_contained_systemd();

#define RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD()                                                          \
  do {                                                                                                \
    if (!::runscope::systemd_testing::inside_contained_systemd())                                             \
      GTEST_SKIP() << "needs a contained systemd: run tests/systemd/run-contained.sh BUILD_DIR as root"; \
  } while (0)

// A unique name part per test process and call, so concurrent runs never collide.
std::string unique_name(const std::string& stem);

// What a held child does once released.
enum class AfterRelease { report_then_pause, report_then_exit, fork_tree_then_pause };

// A forked child blocked on a pipe until release(). Its first act after release is reading
// /proc/self/cgroup and sending it back (first_report()). Killed and reaped by the destructor.
class HeldChild {
 public:
  explicit HeldChild(AfterRelease after = AfterRelease::report_then_pause, int tree_depth = 0);
  ~HeldChild();
  HeldChild(const HeldChild&) = delete;
  HeldChild& operator=(const HeldChild&) = delete;

  pid_t pid() const { return pid_; }
  void release();
  // Waits (with a deadline) for the child's report: its /proc/self/cgroup as first read.
  std::string first_report(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Reaps the child if it has exited (or waits for it up to `timeout`); true once reaped.
  bool reap(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd go_;      // write end: one byte releases the child
  UniqueFd report_;  // read end: the child's first /proc/self/cgroup
};

// Polls `done` until true or the timeout passes; returns its last value.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The "0::" line of /proc/PID/cgroup text.
std::string unified_line(const std::string& proc_cgroup);

// Runs a shell command, returns its stdout; fails the test on a non-zero status.
std::string run_command(const std::string& command);

}  // namespace runscope::systemd_testing
