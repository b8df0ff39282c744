// TaskManager logic against a fake backend and a fake shim (a child process the test ends by
// writing exit.json and killing it): caller rules, history bounds, nothing half-made, events.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>

#include "common/error.hpp"
#include "daemon/task_manager.hpp"
#include "driver/shim_protocol.hpp"
#include "support/driver_fakes.hpp"
#include "support/paused_shims.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;


driver::TaskSpec spec_for(const std::string& task) {
  driver::TaskSpec s;
  s.alloc = "al";
  s.task = task;
  s.config = {{"command", "/bin/true"}};
  return s;
}

class ATaskManager : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.state_dir = dir_.path();
    options_.cleanup_timeout = 200ms;
    options_.history_limit = 2;
    options_.denied_uids = {4242};
    manager_ = std::make_unique<TaskManager>(backend_, nullptr, shims_, clock_, options_);
    sub_ = manager_->subscribe([this](const TaskId& id, const TaskEvent& e) {
      std::lock_guard lock(mutex_);
      seen_.emplace_back(id, e.state);
      cv_.notify_all();
    });
  }
  void TearDown() override {
    sub_.reset();
    if (manager_) manager_->shutdown(false);
  }
  bool wait_for(const TaskId& id, TaskState state) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] {
      return std::find(seen_.begin(), seen_.end(), std::make_pair(id, state)) != seen_.end();
    });
  }

  testing::TempDir dir_;
  testing::FakeBackend backend_;
  PausedShims shims_;
  SteadyClock clock_;
  ManagerOptions options_;
  std::unique_ptr<TaskManager> manager_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<TaskId, TaskState>> seen_;
  std::unique_ptr<Subscription> sub_;
};

TEST_F(ATaskManager, RecordsTheExitCodeItsShimWrote) {
  auto id = manager_->start(spec_for("t"), Caller{});
  EXPECT_EQ(manager_->inspect(id, Caller{}).state, TaskState::running);
  shims_.end(0, 7);
  ASSERT_TRUE(wait_for(id, TaskState::exited));
  auto info = manager_->inspect(id, Caller{});
  EXPECT_EQ(info.exit_code, 7);
  EXPECT_EQ(backend_.state->destroyed, 1);
  auto saved = read_task_record(dir_.path() / kTasksDir / id.cgroup_name());
  EXPECT_EQ(saved.info.state, TaskState::exited);
  EXPECT_EQ(saved.info.exit_code, 7);
}

TEST_F(ATaskManager, InspectShowsWhatTheCgroupCountedAndNamesAnOomKill) {
  // Set before the start: the service's threads read them later, after a lock this thread took.
  backend_.stats.cpu_user = std::chrono::microseconds(1500);
  backend_.stats.cpu_system = std::chrono::microseconds(250);
  backend_.stats.memory_peak = 64u << 20;
  backend_.stats.oom_kills = 1;
  auto id = manager_->start(spec_for("t"), Caller{});
  const auto& shim = shims_.shims.at(0);
  driver::write_exit_record(shim.dir, {driver::ExitStatus{true, SIGKILL}, shim.pid, std::chrono::system_clock::now()});
  ::kill(shim.pid, SIGKILL);
  ASSERT_TRUE(wait_for(id, TaskState::oom_killed));
  auto j = manager_->inspect(id, Caller{}).to_json();
  EXPECT_EQ(j["oom_killed"], true);
  EXPECT_EQ(j["signal"], SIGKILL);
  EXPECT_EQ(j["memory_peak"], 64u << 20);
  EXPECT_EQ(j["cpu_user_usec"], 1500);
  EXPECT_EQ(j["cpu_system_usec"], 250);
  // And after a restart, from the saved record.
  auto saved = read_task_record(dir_.path() / kTasksDir / id.cgroup_name());
  EXPECT_EQ(saved.info.usage.memory_peak, 64u << 20);
}

TEST_F(ATaskManager, KeepsABoundedHistoryPerTask) {
  auto id = manager_->start(spec_for("t"), Caller{});
  shims_.end(0, 0);
  ASSERT_TRUE(wait_for(id, TaskState::exited));
  auto events = manager_->events(id, Caller{});
  ASSERT_EQ(events.size(), 2u);  // pending fell off
  EXPECT_EQ(events[0].state, TaskState::running);
  EXPECT_EQ(events[1].state, TaskState::exited);
}

TEST_F(ATaskManager, ReportsAShimThatDiedWithoutARecordAsLost) {
  auto id = manager_->start(spec_for("t"), Caller{});
  ::kill(shims_.shims[0].pid, SIGKILL);
  ASSERT_TRUE(wait_for(id, TaskState::lost));
  EXPECT_FALSE(manager_->inspect(id, Caller{}).exit_code);
}

TEST_F(ATaskManager, LeavesNothingWhenTheShimCannotStartTheTask) {
  shims_.fail = true;
  EXPECT_THROW(manager_->start(spec_for("t"), Caller{}), Error);
  EXPECT_TRUE(manager_->list(Caller{}).empty());
  EXPECT_TRUE(fs::is_empty(dir_.path() / kTasksDir));
  shims_.fail = false;
  EXPECT_NO_THROW(manager_->start(spec_for("t"), Caller{}));  // the name is free again
}

TEST_F(ATaskManager, RefusesASecondTaskOfTheSameName) {
  manager_->start(spec_for("t"), Caller{});
  try {
    manager_->start(spec_for("t"), Caller{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
  }
}

TEST_F(ATaskManager, LetsACallerThatIsNotRootSeeAndActOnOnlyItsOwnTasks) {
  Caller alice{1001, 1001}, bob{1002, 1002};
  auto mine = manager_->start(spec_for("alice"), alice);
  EXPECT_EQ(manager_->inspect(mine, alice).owner, 1001u);
  EXPECT_EQ(manager_->list(alice).size(), 1u);
  EXPECT_TRUE(manager_->list(bob).empty());
  for (auto call : std::vector<std::function<void()>>{[&] { manager_->inspect(mine, bob); },
                                                      [&] { manager_->stop(mine, 0s, bob); },
                                                      [&] { manager_->destroy(mine, bob); },
                                                      [&] { manager_->events(mine, bob); }}) {
    try {
      call();
      ADD_FAILURE() << "bob reached alice's task";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::not_found);
    }
  }
  EXPECT_EQ(manager_->list(Caller{}).size(), 1u);  // root sees everything
  auto as_root = spec_for("escalate");
  as_root.user = "root";
  try {
    manager_->start(as_root, alice);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::permission);
  }
  try {
    manager_->start(spec_for("denied"), Caller{4242, 4242});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::permission);
  }
}

TEST_F(ATaskManager, CallsNoListenerAfterItsSubscriptionIsGone) {
  int calls = 0;
  auto sub = manager_->subscribe([&](const TaskId&, const TaskEvent&) { ++calls; });
  auto a = manager_->start(spec_for("a"), Caller{});
  EXPECT_EQ(calls, 2);  // pending, running
  sub.reset();
  manager_->stop(a, 0s, Caller{});
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(manager_->inspect(a, Caller{}).state, TaskState::killed);
}

TEST_F(ATaskManager, RefusesCoresWithoutTheCpusetReconciler) {
  auto spec = spec_for("t");
  spec.resources.cores = 1;
  try {
    manager_->start(spec, Caller{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
  EXPECT_TRUE(manager_->list(Caller{}).empty());
}

}  // namespace
}  // namespace runscope::daemon
