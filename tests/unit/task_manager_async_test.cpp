// TaskManager's operations as events (fake backend, fake shims that are real paused children):
// a stop's grace period holds no caller and no thread, reads and other tasks' operations go on
// meanwhile, operations on one task are ordered, and a member's share of in-flight calls is
// bounded without touching root's.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <future>

#include "common/error.hpp"
#include "daemon/task_manager.hpp"
#include "support/driver_fakes.hpp"
#include "support/paused_shims.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

driver::TaskSpec spec_for(const std::string& task) {
  driver::TaskSpec s;
  s.alloc = "as";
  s.task = task;
  s.config = {{"command", "/bin/true"}};
  s.kill_signal = SIGURG;  // a "task" (a paused child) that takes its kill signal and goes on
  return s;
}

// An operation's reply, as a future.
struct Pending {
  std::shared_ptr<std::promise<Outcome<>>> promise = std::make_shared<std::promise<Outcome<>>>();
  std::future<Outcome<>> future = promise->get_future();
  Reply<> reply() {
    return [p = promise](Outcome<> o) { p->set_value(std::move(o)); };
  }
  bool ready(std::chrono::milliseconds wait = 0ms) { return future.wait_for(wait) == std::future_status::ready; }
  ErrorKind error_kind() {
    try {
      future.get().get();
    } catch (const Error& e) {
      return e.kind();
    }
    ADD_FAILURE() << "it did not fail";
    return ErrorKind::system;
  }
};

class AnAsyncTaskManager : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.state_dir = dir_.path();
    options_.cleanup_timeout = 200ms;  // the fake shims ignore the (fake) cgroup kill: SIGKILLed after it
    backend_.folder_root = dir_.path() / "cgroups";
    make();
  }
  // The task's main process (the fake shim itself) is in its "cgroup": a stop can signal it, so the
  // stop gives it its grace period.
  TaskId started(const std::string& task, Caller caller = {}) {
    auto id = manager_->start(spec_for(task), caller);
    std::ofstream(backend_.folder_root / id.cgroup_name() / "cgroup.procs")
        << manager_->inspect(id, Caller{}).pid << "\n";
    return id;
  }
  void make() { manager_ = std::make_unique<TaskManager>(backend_, nullptr, shims_, clock_, options_); }
  void TearDown() override {
    shims_.release();
    if (manager_) manager_->shutdown(false);
  }
  // The start's reply as a future, while the fake shim holds it.
  std::future<TaskId> start_async(const std::string& task, Caller caller = {}) {
    auto p = std::make_shared<std::promise<TaskId>>();
    auto f = p->get_future();
    manager_->start(SpecSource::of(spec_for(task)), caller, [p](Outcome<TaskId> o) {
      try {
        p->set_value(o.get());
      } catch (...) {
        p->set_exception(std::current_exception());
      }
    });
    return f;
  }
  bool wait_until(const std::function<bool()>& done) {
    for (int i = 0; i < 2000; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  testing::TempDir dir_;
  testing::FakeBackend backend_;
  PausedShims shims_;
  SteadyClock clock_;
  ManagerOptions options_;
  std::unique_ptr<TaskManager> manager_;
};

TEST_F(AnAsyncTaskManager, AnswersReadsAndOtherTasksWhileAStopWaitsOutAnHourOfGrace) {
  auto slow = started("slow");
  Pending stop;
  manager_->stop(slow, std::chrono::hours(1), Caller{}, stop.reply());
  EXPECT_FALSE(stop.ready(50ms));
  EXPECT_EQ(manager_->inspect(slow, Caller{}).state, TaskState::running);
  EXPECT_EQ(manager_->list(Caller{}).size(), 1u);
  EXPECT_FALSE(manager_->events(slow, Caller{}).empty());
  // Another task starts and stops meanwhile.
  auto other = manager_->start(spec_for("other"), Caller{});
  manager_->stop(other, 0s, Caller{});
  EXPECT_EQ(manager_->inspect(other, Caller{}).state, TaskState::killed);
  EXPECT_FALSE(stop.ready());
  shims_.end(0, 3);  // the slow task ends by itself within its grace period
  ASSERT_TRUE(stop.ready(10s));
  EXPECT_TRUE(stop.future.get().ok());
  auto info = manager_->inspect(slow, Caller{});
  EXPECT_EQ(info.state, TaskState::killed);  // stopped on request, its own exit code kept
  EXPECT_EQ(info.exit_code, 3);
}

TEST_F(AnAsyncTaskManager, MovesTheKillUpWhenALaterStopAsksForLess) {
  auto id = started("t");
  Pending patient;
  manager_->stop(id, Duration::max(), Caller{}, patient.reply());  // capped at a year, not wrapped to "now"
  EXPECT_FALSE(patient.ready(50ms));
  manager_->stop(id, 0s, Caller{});  // kills now: the fake shim is SIGKILLed after the cleanup deadline
  ASSERT_TRUE(patient.ready(10s));
  EXPECT_TRUE(patient.future.get().ok());
  EXPECT_EQ(manager_->inspect(id, Caller{}).state, TaskState::killed);
  EXPECT_EQ(backend_.state->destroyed, 1);
}

TEST_F(AnAsyncTaskManager, AppliesAStopAskedForWhileTheTaskStartsOnceItRuns) {
  shims_.hold = true;
  auto started = start_async("t");
  ASSERT_TRUE(wait_until([&] { return shims_.held() == 1; }));
  TaskId id("as", "t");
  EXPECT_EQ(manager_->inspect(id, Caller{}).state, TaskState::pending);
  try {
    manager_->signal(id, SIGUSR1, Caller{});
    ADD_FAILURE() << "a starting task was signalled";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
  }
  Pending stop;
  manager_->stop(id, 0s, Caller{}, stop.reply());
  EXPECT_FALSE(stop.ready(50ms));  // ordered after the start
  shims_.release();
  ASSERT_EQ(started.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(started.get(), id);
  ASSERT_TRUE(stop.ready(10s));
  EXPECT_TRUE(stop.future.get().ok());
  EXPECT_EQ(manager_->inspect(id, Caller{}).state, TaskState::killed);
}

TEST_F(AnAsyncTaskManager, UndoesAStartWhoseShimNeverAnswersAndFreesTheName) {
  options_.start_timeout = 200ms;
  make();
  shims_.hold = true;
  auto started = start_async("t");
  ASSERT_EQ(started.wait_for(10s), std::future_status::ready);
  try {
    started.get();
    ADD_FAILURE() << "the start succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::timeout);
  }
  EXPECT_TRUE(manager_->list(Caller{}).empty());
  EXPECT_TRUE(fs::is_empty(dir_.path() / kTasksDir));
  shims_.hold = false;
  EXPECT_NO_THROW(manager_->start(spec_for("t"), Caller{}));
}

TEST_F(AnAsyncTaskManager, RefusesAMembersCallsBeyondItsShareAtOnceButNotRoots) {
  options_.admission.member_ops = 2;
  make();
  Caller alice{1001, 1001};
  auto a = started("a", alice);
  auto b = started("b", alice);
  Pending s1, s2, s3;
  manager_->stop(a, std::chrono::hours(1), alice, s1.reply());
  manager_->stop(b, std::chrono::hours(1), alice, s2.reply());
  manager_->stop(a, std::chrono::hours(1), alice, s3.reply());
  ASSERT_TRUE(s3.ready(1s));  // refused at once
  EXPECT_EQ(s3.error_kind(), ErrorKind::resources);
  EXPECT_FALSE(s1.ready());
  manager_->stop(a, 0s, Caller{});  // root's own share
  ASSERT_TRUE(s1.ready(10s));
  EXPECT_TRUE(s1.future.get().ok());
  Pending s4;  // alice holds one operation now: one more fits
  manager_->stop(b, 0s, alice, s4.reply());
  ASSERT_TRUE(s4.ready(10s));
  EXPECT_TRUE(s4.future.get().ok());
  ASSERT_TRUE(s2.ready(10s));
}

TEST_F(AnAsyncTaskManager, DestroysARunningTaskOnceItIsDeadAndTellsLaterCallersItIsGone) {
  auto id = manager_->start(spec_for("t"), Caller{});
  manager_->destroy(id, Caller{});
  EXPECT_TRUE(manager_->list(Caller{}).empty());
  EXPECT_FALSE(fs::exists(dir_.path() / kTasksDir / id.cgroup_name()));
  try {
    manager_->stop(id, 0s, Caller{});
    ADD_FAILURE() << "a destroyed task was stopped";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
}

TEST_F(AnAsyncTaskManager, AnswersEveryWaiterWithAnErrorAtShutdownAndLeavesTheTaskRunning) {
  auto id = started("t");
  Pending stop;
  manager_->stop(id, std::chrono::hours(1), Caller{}, stop.reply());
  EXPECT_FALSE(stop.ready(50ms));
  manager_->shutdown(true);
  ASSERT_TRUE(stop.ready(10s));
  EXPECT_EQ(stop.error_kind(), ErrorKind::conflict);
  EXPECT_EQ(::kill(shims_.shims.at(0).pid, 0), 0);  // still there
  EXPECT_EQ(manager_->timers_and_watches(), 0u);
  ::kill(shims_.shims.at(0).pid, SIGKILL);
  manager_.reset();
}

}  // namespace
}  // namespace runscope::daemon
