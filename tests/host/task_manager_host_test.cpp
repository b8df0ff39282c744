// TaskManager on this host's real v1 cgroupfs with the real runscope-shim: tasks start confined,
// end with their true status, are stopped, report OOM kills, log to rotated files, and leave
// nothing behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <mutex>

#include "common/error.hpp"
#include "common/file.hpp"
#include "common/sanitizers.hpp"
#include "driver/shim_protocol.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::shell_task;

class ATaskManagerOnThisHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    testing::become_subreaper();
    env_ = testing::make_v1_env("tm");
    backend_ = env_.make_backend(clock_);
    launcher_ = std::make_unique<ExecShimLauncher>(RUNSCOPE_SHIM_BINARY);
    options_.state_dir = state_.path() / "state";
    options_.kill_timeout = 2s;
    make_manager();
  }

  void make_manager() {
    waiter_.reset();  // its subscription belongs to the old manager
    manager_.reset();
    manager_ = std::make_unique<TaskManager>(*backend_, nullptr, *launcher_, clock_, options_,
                                             [this](const std::string& l) {
                                               std::lock_guard lock(log_mutex_);
                                               log_.push_back(l);
                                             });
    waiter_ = std::make_unique<testing::StateWaiter>(*manager_);
  }

  void TearDown() override {
    if (!backend_) return;
    waiter_.reset();
    if (manager_) manager_->shutdown(false);
    manager_.reset();
    testing::reap_zombies();
    auto left = env_.leftovers();
    EXPECT_THAT(left, ::testing::IsEmpty());
    env_.remove_parent();
  }

  TaskInfo run_to_end(const driver::TaskSpec& spec, const Caller& caller = {}) {
    auto id = manager_->start(spec, caller);
    EXPECT_TRUE(waiter_->wait_final(id)) << id.display() << " did not end";
    return manager_->inspect(id, Caller{});
  }

  SteadyClock clock_;
  testing::TempDir state_;
  testing::V1Env env_;
  std::unique_ptr<cgroup::Backend> backend_;
  std::unique_ptr<ShimLauncher> launcher_;
  ManagerOptions options_;
  std::mutex log_mutex_;  // the manager logs from several threads at once
  std::vector<std::string> log_;
  std::unique_ptr<TaskManager> manager_;
  std::unique_ptr<testing::StateWaiter> waiter_;
};

TEST_F(ATaskManagerOnThisHost, ReportsATasksExitCodeAndRemovesItsCgroup) {
  auto info = run_to_end(shell_task("a1", "exits", "exit 3"));
  EXPECT_EQ(info.state, TaskState::exited);
  EXPECT_EQ(info.exit_code, 3);
  EXPECT_FALSE(info.signal);
  EXPECT_TRUE(info.finished_at);
  EXPECT_THAT(env_.leftovers(), ::testing::IsEmpty());
  auto events = manager_->events(info.id, Caller{});
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].state, TaskState::pending);
  EXPECT_EQ(events[1].state, TaskState::running);
  EXPECT_EQ(events[2].exit_code, 3);
}

TEST_F(ATaskManagerOnThisHost, RunsTheTaskInItsCgroupAndStopsItWithItsKillSignal) {
  auto spec = shell_task("a-2", "sleeper-x", "trap 'exit 9' INT; sleep 1000 & wait");
  spec.kill_signal = SIGINT;
  auto id = manager_->start(spec, Caller{});
  auto info = manager_->inspect(id, Caller{});
  EXPECT_EQ(info.state, TaskState::running);
  auto cgroup = read_file(fs::path("/proc") / std::to_string(info.pid) / "cgroup");
  EXPECT_THAT(cgroup, ::testing::HasSubstr(env_.parent + "/" + id.cgroup_name()));
  EXPECT_GE(manager_->stats(id, Caller{}).pids_current.value_or(0), 1u);
  manager_->stop(id, std::nullopt, Caller{});
  info = manager_->inspect(id, Caller{});
  EXPECT_EQ(info.state, TaskState::killed);
  EXPECT_EQ(info.exit_code, 9);  // its own INT handler ran
  EXPECT_FALSE(testing::process_alive(info.pid));
  EXPECT_THAT(env_.leftovers(), ::testing::IsEmpty());
}

TEST_F(ATaskManagerOnThisHost, KillsATaskThatIgnoresItsKillSignalAfterTheTimeout) {
  auto id = manager_->start(shell_task("a3", "stubborn", "trap '' TERM; echo ready; sleep 1000 & wait; sleep 1000"),
                            Caller{});
  // "started" means exec'd, not that the shell has run its trap yet: a TERM before it would kill it.
  auto out = options_.state_dir / kTasksDir / id.cgroup_name() / driver::kStdoutLog;
  ASSERT_TRUE(testing::wait_until([&] { return fs::exists(out) && read_file(out) == "ready\n"; }, 10000ms));
  manager_->stop(id, 100ms, Caller{});
  auto info = manager_->inspect(id, Caller{});
  EXPECT_EQ(info.state, TaskState::killed);
  EXPECT_EQ(info.signal, SIGKILL);
}

TEST_F(ATaskManagerOnThisHost, ReportsAnOomKill) {
  auto spec = shell_task("a4", "hog", "exec dd if=/dev/zero of=/dev/null bs=256M count=1");
  spec.resources.memory_max = 32u << 20;
  auto info = run_to_end(spec);
  EXPECT_EQ(info.state, TaskState::oom_killed);
  EXPECT_TRUE(info.oom_killed);
  EXPECT_EQ(info.signal, SIGKILL);
}

// The shim's child is a vfork child (spawn.cpp): an exec whose arguments and environment do not
// fit in the task's memory limit fails with E2BIG instead of an OOM kill, and the daemon names the
// limit as `runscope exec` does (the shim sends the errno; driver/shim_protocol.hpp).
TEST_F(ATaskManagerOnThisHost, NamesTheMemoryLimitATasksExecDoesNotFitIn) {
  // 1.5 MB in strings of 100 kB (the kernel takes 128 kB at most per string, ARG_MAX 2 MB here).
  auto spec = shell_task("a9", "big", "");
  const std::string value(100000, 'x');
  spec.config = {{"command", "/bin/true"}, {"args", std::vector<std::string>(6, value)}};
  for (int i = 0; i < 9; ++i) spec.env["BIG" + std::to_string(i)] = value;
  spec.resources.memory_max = 1u << 20;
#if RUNSCOPE_SANITIZED
  // Sanitizer builds copy the child (spawn.cpp): the kernel's OOM killer picks it, before its
  // exec (a failed start) or during it (a task killed by the OOM killer).
  try {
    auto info = run_to_end(spec);
    EXPECT_TRUE(info.oom_killed) << "state " << static_cast<int>(info.state);
  } catch (const Error& e) {
    SUCCEED() << e.what();
  }
#else
  try {
    manager_->start(spec, Caller{});
    FAIL() << "a task started whose exec cannot fit in 1M";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("Argument list too long: the program's arguments and environment do "
                                               "not fit in the task's memory limit (1M)"));
  }
  EXPECT_TRUE(manager_->list(Caller{}).empty());
  EXPECT_TRUE(fs::is_empty(options_.state_dir / kTasksDir));
#endif
  EXPECT_THAT(env_.leftovers(), ::testing::IsEmpty());
}

TEST_F(ATaskManagerOnThisHost, WritesLogsToSizeRotatedFiles) {
  auto spec = shell_task("a5", "talker", "i=0; while [ $i -lt 100 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo oops >&2");
  spec.log.max_size = 1024;
  spec.log.max_files = 2;
  auto info = run_to_end(spec);
  auto logs = manager_->logs(info.id, Caller{});
  ASSERT_EQ(logs.target, "file");
  auto out = read_file(*logs.stdout_path);
  auto older = read_file(*logs.stdout_path + ".1");
  EXPECT_LE(out.size(), 1024u);
  EXPECT_EQ(older.size(), 1024u);
  EXPECT_FALSE(fs::exists(*logs.stdout_path + ".2"));
  EXPECT_THAT(out, ::testing::HasSubstr("line-99-"));
  EXPECT_EQ(read_file(*logs.stderr_path), "oops\n");
}

TEST_F(ATaskManagerOnThisHost, RunsACallerThatIsNotRootAsItselfAndShowsItOnlyItsTasks) {
  Caller nobody{65534, 65534};
  auto spec = shell_task("a6", "mine", "id -u");
  auto info = run_to_end(spec, nobody);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(read_file(*manager_->logs(info.id, nobody).stdout_path), "65534\n");
  EXPECT_EQ(manager_->list(Caller{1000, 1000}).size(), 0u);
  EXPECT_THROW(manager_->inspect(info.id, Caller{1000, 1000}), Error);
  EXPECT_EQ(manager_->list(nobody).size(), 1u);
  spec.task = "as-root";
  spec.user = "root";
  try {
    manager_->start(spec, nobody);
    FAIL() << "ran as root for a caller that is not";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::permission) << e.what();
  }
}

TEST_F(ATaskManagerOnThisHost, LeavesNothingWhenATaskCannotStart) {
  auto spec = shell_task("a7", "broken", "");
  spec.config = {{"command", "/nonexistent/program"}};
  EXPECT_THROW(manager_->start(spec, Caller{}), Error);
  EXPECT_TRUE(manager_->list(Caller{}).empty());
  EXPECT_TRUE(fs::is_empty(options_.state_dir / kTasksDir));
  EXPECT_THAT(env_.leftovers(), ::testing::IsEmpty());
  options_.denied_uids = {0};
  make_manager();
  EXPECT_THROW(manager_->start(shell_task("a7", "denied", "true"), Caller{}), Error);
  EXPECT_TRUE(manager_->list(Caller{}).empty());
}

TEST_F(ATaskManagerOnThisHost, LeavesTasksRunningOnShutdownAndReattachesThem) {
  auto id = manager_->start(shell_task("a8", "keeps", "sleep 1000"), Caller{});
  pid_t pid = manager_->inspect(id, Caller{}).pid;
  waiter_.reset();
  manager_.reset();  // shutdown(true)
  EXPECT_TRUE(testing::process_alive(pid));
  make_manager();
  manager_->recover();
  auto info = manager_->inspect(id, Caller{});
  EXPECT_EQ(info.state, TaskState::running);
  EXPECT_EQ(info.pid, pid);
  EXPECT_EQ(manager_->events(id, Caller{}).back().message, "reattached after restart");
  manager_->stop(id, 0s, Caller{});
  EXPECT_EQ(manager_->inspect(id, Caller{}).state, TaskState::killed);
  EXPECT_FALSE(testing::process_alive(pid));
}

}  // namespace
}  // namespace runscope::daemon
