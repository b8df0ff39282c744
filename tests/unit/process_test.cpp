// Process: the pidfd owner. Waiting with deadlines, signalling after exit, cleanup on destruction.
#include <gtest/gtest.h>
#include <signal.h>

#include "driver/process.hpp"
#include "driver/spawn.hpp"

namespace runscope::driver {
namespace {

using namespace std::chrono_literals;

Process start(const std::string& script) {
  SpawnSpec spec;
  spec.argv = {"sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  CloneSpawner spawner;
  return spawner.spawn(spec, nullptr);
}

bool exists(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(AProcess, WaitReturnsNothingAtTheDeadlineWhileItRuns) {
  SteadyClock clock;
  Process p = start("exec sleep 30");
  EXPECT_FALSE(p.wait(Deadline(clock, 10ms)).has_value());
  EXPECT_FALSE(p.reaped());
}

TEST(AProcess, StaysAnUnreapedZombieUntilReaped) {
  SteadyClock clock;
  Process p = start("exit 9");
  ASSERT_TRUE(p.wait_exited(Deadline(clock, 10s)));
  EXPECT_TRUE(exists(p.pid())) << "the zombie should still hold its pid";
  EXPECT_EQ(p.reap(), (ExitStatus{false, 9}));
  EXPECT_EQ(p.reap(), (ExitStatus{false, 9})) << "reaping twice returns the cached status";
  EXPECT_FALSE(exists(p.pid()));
}

TEST(AProcess, SignalReportsWhetherItWasStillThere) {
  Process p = start("exec sleep 30");
  EXPECT_TRUE(p.signal(SIGTERM));
  EXPECT_EQ(p.reap(), (ExitStatus{true, SIGTERM}));
  EXPECT_FALSE(p.signal(SIGTERM));
}

TEST(AProcess, IsKilledAndReapedWhenDestroyedUnreaped) {
  pid_t pid;
  {
    Process p = start("exec sleep 30");
    pid = p.pid();
  }
  EXPECT_FALSE(exists(pid));
}

TEST(AProcess, MovesOwnershipOfItsChild) {
  Process a = start("exec sleep 30");
  pid_t pid = a.pid();
  Process b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.pid(), pid);
  b = Process();
  EXPECT_FALSE(exists(pid)) << "assigning over a live Process kills its child";
}

TEST(AnExitStatus, DescribesCodesAndSignals) {
  EXPECT_EQ((ExitStatus{false, 3}).describe(), "exit code 3");
  EXPECT_EQ((ExitStatus{true, SIGTERM}).describe(), "signal 15 (SIGTERM)");
  EXPECT_EQ((ExitStatus{true, SIGTERM}).shell_code(), 143);
}

}  // namespace
}  // namespace runscope::driver
