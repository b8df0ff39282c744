// When TaskManager asks its backend to remove supervisor homes (cgroup::Backend::
// remove_stray_supervisors): at recovery with the running tasks' names, and at shutdown only when
// no task is left running (then no supervisors' home, e.g. the systemd anchor, outlives the daemon:
// a package removal stops it last).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "daemon/task_manager.hpp"
#include "support/driver_fakes.hpp"
#include "support/paused_shims.hpp"

namespace runscope::daemon {
namespace {

using Names = std::vector<std::set<std::string>>;

driver::TaskSpec a_task(const std::string& task) {
  driver::TaskSpec s;
  s.alloc = "al";
  s.task = task;
  s.config = {{"command", "/bin/true"}};
  return s;
}

class ATaskManagersSupervisorHomes : public ::testing::Test {
 protected:
  std::unique_ptr<TaskManager> make() {
    ManagerOptions options;
    options.state_dir = dir_.path();
    options.cleanup_timeout = std::chrono::milliseconds(200);
    return std::make_unique<TaskManager>(backend_, nullptr, shims_, clock_, options);
  }

  testing::TempDir dir_;
  testing::FakeBackend backend_;
  PausedShims shims_;
  SteadyClock clock_;
};

TEST_F(ATaskManagersSupervisorHomes, AreAllRemovedAtRecoveryAndShutdownWhenNoTaskRuns) {
  auto manager = make();
  manager->recover();
  EXPECT_EQ(backend_.stray_calls, (Names{{}}));
  manager->shutdown(true);
  EXPECT_EQ(backend_.stray_calls, (Names{{}, {}}));
}

TEST_F(ATaskManagersSupervisorHomes, AreKeptAtShutdownWhileATaskRuns) {
  auto manager = make();
  manager->start(a_task("t"), Caller{});
  manager->shutdown(true);  // the task runs on, supervised, for the next daemon
  EXPECT_TRUE(backend_.stray_calls.empty());
  const pid_t shim = shims_.shims.at(0).pid;
  ::kill(shim, SIGKILL);
  ::waitpid(shim, nullptr, 0);
}

}  // namespace
}  // namespace runscope::daemon
