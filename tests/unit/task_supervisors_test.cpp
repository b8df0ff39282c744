// When TaskManager asks its backend to remove supervisor homes (cgroup::Backend::
// remove_stray_supervisors): at recovery with the running tasks' names, and at shutdown only when
// no task is left running (then no supervisors' home, e.g. the systemd anchor, outlives the daemon:
// a package removal stops it last).
#include <fcntl.h>
#include <gmock/gmock.h>
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

// The real shim, whose forked child cannot write to its home's join file: it exits before exec,
// and the start (driven by events: the channel's EOF) fails naming the home, leaving nothing.
TEST_F(ATaskManagersSupervisorHomes, FailAStartNamingTheHomeTheShimCouldNotJoin) {
  const std::string home_file = (dir_.path() / "home-procs").string();
  backend_.prepare = [&](testing::FakeCgroupState& state) {
    state.with_home = true;
    state.home_files = {home_file};
    state.home_flags = O_RDONLY;  // the child's write fails
  };
  ExecShimLauncher shim(RUNSCOPE_SHIM_BINARY);
  ManagerOptions options;
  options.state_dir = dir_.path() / "state";
  TaskManager manager(backend_, nullptr, shim, clock_, options);
  try {
    manager.start(a_task("t"), Caller{});
    FAIL() << "a shim that could not join its home started a task";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::system);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("could not join its supervisors' cgroup fake-home")) << e.what();
  }
  EXPECT_TRUE(backend_.state->placed.empty()) << "the task was placed anyway";
  EXPECT_TRUE(manager.list(Caller{}).empty());
  EXPECT_FALSE(std::filesystem::exists(options.state_dir / "tasks" / TaskId("al", "t").cgroup_name()));
}

}  // namespace
}  // namespace runscope::daemon
