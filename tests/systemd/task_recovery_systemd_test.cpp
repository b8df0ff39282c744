// The daemon's lifecycle on the systemd path, in the contained systemd: a TaskManager over the
// SystemdBackend starts tasks, goes away leaving them running (a clean shutdown, or kill -9 of a
// manager in a forked child), one task ends meanwhile and a scope no task owns appears; a new
// manager over the same state dir reattaches the running task, reports the ended one with its
// true exit code and stops the stray scope; stopping everything leaves no scope and no process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <mutex>

#include "common/file.hpp"
#include "daemon/task_manager.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "systemd/contained.hpp"
#include "systemd/scope_backend.hpp"
#include "systemd/sdbus_manager.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using runscope::testing::shell_task;
using runscope::systemd_testing::unique_name;

constexpr int kExitCode = 7;

bool in_scope(pid_t pid, const std::string& unit) {
  auto text = read_file_if_exists(fs::path("/proc") / std::to_string(pid) / "cgroup");
  return text && text->find("/runscope.slice/" + unit + "\n") != std::string::npos;
}

// One manager's world: a bus connection, the systemd backend, the real shim.
struct SystemdManagerWorld {
  explicit SystemdManagerWorld(const fs::path& state, LogLine log = {})
      : backend(bus), launcher(RUNSCOPE_SHIM_BINARY) {
    ManagerOptions options;
    options.state_dir = state;
    manager = std::make_unique<TaskManager>(backend, nullptr, launcher, clock, options, std::move(log));
  }
  SteadyClock clock;
  systemd::SdbusSystemdManager bus;
  systemd::SystemdBackend backend;
  ExecShimLauncher launcher;
  std::unique_ptr<TaskManager> manager;
};

class ATaskManagerOnSystemd : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
#ifndef RUNSCOPE_SHIM_BINARY
    GTEST_SKIP() << "runscope-shim was not built";
#endif
    runscope::testing::become_subreaper();  // the shims of a manager that went away end up ours
    alloc_ = unique_name("rec");
  }
  void TearDown() override { runscope::testing::reap_zombies(); }

  TaskId running_id() const { return TaskId(alloc_, "runs-on"); }
  TaskId ending_id() const { return TaskId(alloc_, "ends-7"); }
  fs::path state() const { return tmp_.path() / "state"; }
  fs::path go() const { return tmp_.path() / "go"; }

  // What the first manager starts: one task that runs on, one that ends once `go` exists.
  void start_tasks(TaskManager& manager) const {
    manager.start(shell_task(alloc_, running_id().task(), "sleep 1000"), Caller{});
    manager.start(shell_task(alloc_, ending_id().task(), "while [ ! -e " + go().string() +
                                                             " ]; do sleep 0.02; done; exit " +
                                                             std::to_string(kExitCode)),
                  Caller{});
  }

  // While no manager runs: the ending task ends, and a scope of ours appears that no task owns.
  void meanwhile(systemd::SystemdBackend& backend) {
    std::ofstream(go()) << "go";
    const auto exit_file = state() / kTasksDir / ending_id().cgroup_name() / "exit.json";
    ASSERT_TRUE(runscope::testing::wait_until([&] { return fs::exists(exit_file); }, 30s));
    stray_ = std::make_unique<systemd_testing::HeldChild>();
    auto cg = backend.create(TaskId(alloc_, "stray"), cgroup::Limits{});
    cg->place(stray_->pid());
    stray_->release();
    cg->disown();
  }

  void expect_recovered_then_clean(const fs::path& state_dir) {
    std::mutex log_mutex;  // the manager logs from several threads at once
    std::vector<std::string> log;
    SystemdManagerWorld world(state_dir, [&](const std::string& line) {
      std::lock_guard lock(log_mutex);
      log.push_back(line);
    });
    auto& manager = *world.manager;
    manager.recover();

    auto running = manager.inspect(running_id(), Caller{});
    EXPECT_EQ(running.state, TaskState::running);
    EXPECT_EQ(running.location, "runscope.slice/" + running_id().unit_name());
    EXPECT_TRUE(runscope::testing::process_alive(running.pid));
    EXPECT_TRUE(in_scope(running.pid, running_id().unit_name()));
    EXPECT_GT(manager.stats(running_id(), Caller{}).pids_current.value_or(1), 0U);

    auto ended = manager.inspect(ending_id(), Caller{});
    EXPECT_EQ(ended.state, TaskState::exited);
    EXPECT_EQ(ended.exit_code, kExitCode);

    const auto stray_unit = TaskId(alloc_, "stray").unit_name();
    {
      std::lock_guard lock(log_mutex);  // the manager still runs
      EXPECT_THAT(log, ::testing::Contains(::testing::HasSubstr("removed cgroup " + TaskId(alloc_, "stray").cgroup_name())));
    }
    EXPECT_TRUE(world.bus.list_units_by_patterns({}, {stray_unit}).empty()) << "the stray scope was not stopped";
    EXPECT_TRUE(stray_->reap()) << "the stray scope's process survived";

    manager.shutdown(false);
    EXPECT_FALSE(runscope::testing::process_alive(running.pid));
    EXPECT_THAT(our_scopes(world.backend), ::testing::IsEmpty()) << "a scope of this test is left";
  }

  // A manager in a forked child starts the tasks and is kill -9'd; the child's pid, or -1.
  pid_t fork_and_kill_manager() {
    int p[2];
    if (::pipe(p) != 0) return -1;
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(p[0]);
      try {
        SystemdManagerWorld world(state());
        start_tasks(*world.manager);
        if (::write(p[1], "k", 1) != 1) ::_exit(2);
        for (;;) ::pause();
      } catch (...) {
        ::_exit(1);
      }
    }
    ::close(p[1]);
    char c = 0;
    const bool ready = ::read(p[0], &c, 1) == 1;
    ::close(p[0]);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return ready ? child : -1;
  }

  // This test's scopes (its alloc ID begins every unit name) in runscope's slices.
  std::vector<std::string> our_scopes(const systemd::SystemdBackend& backend) const {
    std::vector<std::string> out;
    for (const auto& scope : backend.find_scopes())
      if (scope.unit.starts_with(alloc_ + "-")) out.push_back(scope.unit);
    return out;
  }

  std::string alloc_;
  runscope::testing::TempDir tmp_;
  std::unique_ptr<systemd_testing::HeldChild> stray_;
};

TEST_F(ATaskManagerOnSystemd, TakesItsScopesBackAfterACleanShutdownThatLeftThemRunning) {
  {
    SystemdManagerWorld first(state());
    start_tasks(*first.manager);
    first.manager->shutdown(true);
    meanwhile(first.backend);
    if (HasFatalFailure()) return;
  }
  expect_recovered_then_clean(state());
}

TEST_F(ATaskManagerOnSystemd, TakesItsScopesBackAfterTheManagerWasKilled) {
  ASSERT_GT(fork_and_kill_manager(), 0) << "the forked manager failed to start its tasks";
  {
    systemd::SdbusSystemdManager bus;
    systemd::SystemdBackend backend(bus);
    EXPECT_EQ(our_scopes(backend).size(), 2U) << "both tasks' scopes outlive their manager";
    meanwhile(backend);
    if (HasFatalFailure()) return;
  }
  expect_recovered_then_clean(state());
}

}  // namespace
}  // namespace runscope::daemon
