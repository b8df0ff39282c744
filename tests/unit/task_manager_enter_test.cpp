// TaskManager::enter against a fake backend, fake shims and a fake /proc: the command joins the
// cgroups the task's main process is in (here plain files under the fake cgroup2 mount, which the
// child really writes "0" to), gets the task's environment with the request's over it, and its
// exit code or signal is the answer. Access: root and the owner only (a stranger gets not_found),
// only root names another user; a cap on enters running per caller; a task that is not running
// or whose main process left its cgroup is refused; a service that stops answers and kills.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <future>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/task_manager.hpp"
#include "support/driver_fakes.hpp"
#include "support/paused_shims.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class EnteringATask : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_.folder_root = dir_.path() / "cg";
    options_.state_dir = dir_.path() / "state";
    options_.cleanup_timeout = 200ms;
    options_.proc_root = dir_.path() / "proc";
    options_.admission.member_enters = 2;
    options_.base_env = {"PATH=/usr/bin:/bin", "FROM_TASK=base"};
    manager_ = std::make_unique<TaskManager>(backend_, nullptr, shims_, clock_, options_);
    write_proc("self/mountinfo", "30 25 0:30 / " + backend_.folder_root.string() + " rw - cgroup2 cgroup2 rw\n");
    write_proc("self/cgroup", "0::/daemon\n");
  }
  void TearDown() override {
    if (manager_) manager_->shutdown(false);
  }
  void write_proc(const std::string& rel, const std::string& text) {
    fs::create_directories((options_.proc_root / rel).parent_path());
    std::ofstream(options_.proc_root / rel) << text;
  }
  // A running task whose main process (the fake shim) /proc says is in its cgroup.
  TaskId start(const std::string& name, const Caller& caller) {
    driver::TaskSpec s;
    s.alloc = "al";
    s.task = name;
    s.config = {{"command", "/bin/true"}};
    s.env = {{"FROM_SPEC", "yes"}};
    auto id = manager_->start(s, caller);
    write_proc(std::to_string(manager_->inspect(id, Caller{}).pid) + "/cgroup", "0::/" + id.cgroup_name() + "\n");
    return id;
  }
  fs::path procs_of(const TaskId& id) const { return backend_.folder_root / id.cgroup_name() / "cgroup.procs"; }

  struct Run {
    std::future<int> status;
    UniqueFd out;   // what the command wrote
    UniqueFd keep;  // its stdin's write end: closing it ends `cat`
  };
  Run enter(const TaskId& id, driver::EnterSpec spec, const Caller& caller) {
    Pipe in = make_pipe(O_CLOEXEC), out = make_pipe(O_CLOEXEC);
    auto fds = std::make_shared<std::array<UniqueFd, 3>>();
    (*fds)[0] = std::move(in.read);
    (*fds)[1].reset(::dup(out.write.get()));
    (*fds)[2] = std::move(out.write);
    auto promise = std::make_shared<std::promise<int>>();
    Run run{promise->get_future(), std::move(out.read), std::move(in.write)};
    manager_->enter(id, EnterRequest{std::move(spec), fds}, caller, [promise](Outcome<int> o) {
      try {
        promise->set_value(o.get());
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    });
    return run;
  }
  static std::string read_all(UniqueFd& fd) {
    std::string text;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    return text;
  }
  static driver::EnterSpec sh(const std::string& script) { return driver::EnterSpec{"sh", {"-c", script}, {}, false, {}, {}}; }
  static ErrorKind kind_of(std::future<int>& status) {
    if (status.wait_for(30s) != std::future_status::ready) return ErrorKind::timeout;
    try {
      status.get();
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::system;  // it succeeded
  }

  testing::TempDir dir_;
  testing::FakeBackend backend_;
  PausedShims shims_;
  SteadyClock clock_;
  ManagerOptions options_;
  std::unique_ptr<TaskManager> manager_;
};

TEST_F(EnteringATask, JoinsTheTasksCgroupWithItsEnvironmentAndAnswersTheExitCode) {
  auto id = start("t", Caller{});
  const auto watched = manager_->timers_and_watches();  // the shim's pidfd
  auto spec = sh("echo $FROM_TASK $FROM_SPEC $EXTRA; pwd; exit 3");
  spec.env = {{"EXTRA", "x"}, {"FROM_TASK", "over"}};
  spec.cwd = "/tmp";
  auto run = enter(id, spec, Caller{});
  ASSERT_EQ(run.status.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(run.status.get(), 3);
  EXPECT_EQ(read_all(run.out), "over yes x\n/tmp\n");
  EXPECT_EQ(read_file(procs_of(id)), "0");  // the child wrote itself into the task's cgroup
  EXPECT_EQ(manager_->timers_and_watches(), watched);  // nothing of it is left in the reactor
}

TEST_F(EnteringATask, AnswersASignalAs128PlusItsNumber) {
  auto id = start("t", Caller{});
  auto run = enter(id, sh("kill -TERM $$"), Caller{});
  ASSERT_EQ(run.status.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(run.status.get(), 128 + SIGTERM);
}

TEST_F(EnteringATask, TellsAStrangerThereIsNoSuchTask) {
  const uid_t me = ::geteuid() == 0 ? 1001 : ::geteuid();
  auto id = start("t", Caller{me, me});
  auto stranger = enter(id, sh("exit 0"), Caller{me + 1, me + 1});
  EXPECT_EQ(kind_of(stranger.status), ErrorKind::not_found);
  auto owner = enter(id, sh("id -u"), Caller{me, me});
  ASSERT_EQ(owner.status.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(owner.status.get(), 0);
  EXPECT_EQ(read_all(owner.out), std::to_string(me) + "\n");  // as the task's user
  auto root = enter(id, sh("exit 5"), Caller{});
  EXPECT_EQ(root.status.get(), 5);
}

TEST_F(EnteringATask, LetsOnlyRootNameAnotherUser) {
  const uid_t me = ::geteuid() == 0 ? 1001 : ::geteuid();
  auto id = start("t", Caller{me, me});
  auto spec = sh("id -u");
  spec.user = "root";
  auto member = enter(id, spec, Caller{me, me});
  EXPECT_EQ(kind_of(member.status), ErrorKind::permission);
  if (::geteuid() != 0) GTEST_SKIP() << "running a command as another user needs root";
  auto root = enter(id, spec, Caller{});
  EXPECT_EQ(root.status.get(), 0);
  EXPECT_EQ(read_all(root.out), "0\n");
}

TEST_F(EnteringATask, CapsTheCommandsACallerHasRunningAtOnce) {
  const uid_t me = ::geteuid() == 0 ? 1001 : ::geteuid();
  auto id = start("t", Caller{me, me});
  auto first = enter(id, driver::EnterSpec{"cat", {}, {}, false, {}, {}}, Caller{me, me});
  auto second = enter(id, driver::EnterSpec{"cat", {}, {}, false, {}, {}}, Caller{me, me});
  auto third = enter(id, sh("exit 0"), Caller{me, me});
  EXPECT_EQ(kind_of(third.status), ErrorKind::resources);
  auto by_root = enter(id, sh("exit 0"), Caller{});  // root's share is its own
  EXPECT_EQ(by_root.status.get(), 0);
  first.keep.reset();  // cat sees EOF and ends
  EXPECT_EQ(first.status.get(), 0);
  auto fourth = enter(id, sh("exit 0"), Caller{me, me});
  EXPECT_EQ(fourth.status.get(), 0);
  second.keep.reset();
  EXPECT_EQ(second.status.get(), 0);
}

TEST_F(EnteringATask, RefusesATaskThatEndedOrWhoseMainProcessLeftItsCgroup) {
  auto id = start("t", Caller{});
  write_proc(std::to_string(manager_->inspect(id, Caller{}).pid) + "/cgroup", "0::/elsewhere\n");
  auto moved = enter(id, sh("exit 0"), Caller{});
  EXPECT_EQ(kind_of(moved.status), ErrorKind::conflict);
  auto ended_event = std::make_shared<std::promise<void>>();
  auto sub = manager_->subscribe([ended_event](const TaskId&, const TaskEvent& e) {
    if (is_final(e.state)) ended_event->set_value();
  });
  shims_.end(0, 0);
  ASSERT_EQ(ended_event->get_future().wait_for(30s), std::future_status::ready);
  auto ended = enter(id, sh("exit 0"), Caller{});
  EXPECT_EQ(kind_of(ended.status), ErrorKind::conflict);
}

TEST_F(EnteringATask, ReportsACommandThatCannotBeExecuted) {
  auto id = start("t", Caller{});
  auto run = enter(id, driver::EnterSpec{"no-such-command-here", {}, {}, false, {}, {}}, Caller{});
  EXPECT_EQ(kind_of(run.status), ErrorKind::not_found);
}

TEST_F(EnteringATask, AnswersAndKillsTheCommandWhenTheServiceStops) {
  auto id = start("t", Caller{});
  const auto watched = manager_->timers_and_watches();
  auto run = enter(id, driver::EnterSpec{"cat", {}, {}, false, {}, {}}, Caller{});
  // Running once the reactor watches its pidfd (the pool step forked it); a deadline, not a guess.
  Deadline deadline(clock_, 30s);
  while (manager_->timers_and_watches() == watched && !deadline.expired()) clock_.sleep_for(5ms);
  ASSERT_EQ(manager_->timers_and_watches(), watched + 1);
  manager_->shutdown(true);
  EXPECT_EQ(kind_of(run.status), ErrorKind::conflict);
  EXPECT_EQ(read_all(run.out), "");  // EOF: the command (its only other writer) is gone
  manager_.reset();
  ::kill(shims_.shims.at(0).pid, SIGKILL);  // the task "keeps running" past shutdown: end its shim
  ::waitpid(shims_.shims.at(0).pid, nullptr, 0);
}

}  // namespace
}  // namespace runscope::daemon
