// Faults on the systemd path, in the contained systemd: a TaskManager over the SystemdBackend
// with tasks running goes through `systemctl restart dbus.service` (its bus connection cut) and
// `systemctl daemon-reexec`. Tasks keep running in their scopes, and the manager keeps working:
// it starts new scopes afterwards (reconnect, and a JobRemoved subscription that survives the
// reexec), stops old ones, and leaves no scope behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
using runscope::systemd_testing::run_command;
using runscope::systemd_testing::unique_name;

constexpr int kExitCode = 4;

bool in_scope(pid_t pid, const std::string& unit) {
  auto text = read_file_if_exists(fs::path("/proc") / std::to_string(pid) / "cgroup");
  return text && text->find("/runscope.slice/" + unit + "\n") != std::string::npos;
}

class ATaskManagerOnSystemdUnderFire : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
#ifndef RUNSCOPE_SHIM_BINARY
    GTEST_SKIP() << "runscope-shim was not built";
#else
    alloc_ = unique_name("fire");
    ManagerOptions options;
    options.state_dir = tmp_.path() / "state";
    bus_ = std::make_unique<systemd::SdbusSystemdManager>();
    backend_ = std::make_unique<systemd::SystemdBackend>(*bus_);
    launcher_ = std::make_unique<ExecShimLauncher>(RUNSCOPE_SHIM_BINARY);
    manager_ = std::make_unique<TaskManager>(*backend_, nullptr, *launcher_, clock_, options);
    waiter_ = std::make_unique<runscope::testing::StateWaiter>(*manager_);
#endif
  }
  void TearDown() override {
    if (manager_) manager_->shutdown(false);
    runscope::testing::reap_zombies();
  }

  // Both long tasks still run, in their scopes, with the pids they started with.
  void expect_running(const std::map<TaskId, pid_t>& pids) {
    for (const auto& [id, pid] : pids) {
      auto info = manager_->inspect(id, Caller{});
      EXPECT_EQ(info.state, TaskState::running) << id.display();
      EXPECT_EQ(info.pid, pid);
      EXPECT_TRUE(runscope::testing::process_alive(pid)) << id.display();
      EXPECT_TRUE(in_scope(pid, id.unit_name())) << id.display();
    }
  }

  // A new task can be started (a scope made, its job awaited) and ends with its true code.
  void expect_new_task_works(const std::string& name) {
    auto id = manager_->start(shell_task(alloc_, name, "exit " + std::to_string(kExitCode)), Caller{});
    ASSERT_TRUE(waiter_->wait_final(id));
    auto info = manager_->inspect(id, Caller{});
    EXPECT_EQ(info.state, TaskState::exited);
    EXPECT_EQ(info.exit_code, kExitCode);
  }

  std::string alloc_;
  runscope::testing::TempDir tmp_;
  SteadyClock clock_;
  std::unique_ptr<systemd::SdbusSystemdManager> bus_;
  std::unique_ptr<systemd::SystemdBackend> backend_;
  std::unique_ptr<ExecShimLauncher> launcher_;
  std::unique_ptr<TaskManager> manager_;
  std::unique_ptr<runscope::testing::StateWaiter> waiter_;
};

TEST_F(ATaskManagerOnSystemdUnderFire, KeepsItsTasksAndKeepsWorkingAcrossABusRestartAndADaemonReexec) {
  std::map<TaskId, pid_t> pids;
  for (const char* name : {"one", "two"}) {
    auto id = manager_->start(shell_task(alloc_, name, "exec sleep 1000"), Caller{});
    pids[id] = manager_->inspect(id, Caller{}).pid;
  }

  run_command("systemctl restart dbus.service");
  expect_running(pids);
  expect_new_task_works("after-bus-restart");
  EXPECT_GE(bus_->reconnects(), 1U);

  run_command("systemctl daemon-reexec");
  expect_running(pids);
  expect_new_task_works("after-reexec");

  auto first = pids.begin()->first;
  manager_->stop(first, 2s, Caller{});
  EXPECT_EQ(manager_->inspect(first, Caller{}).state, TaskState::killed);
  EXPECT_FALSE(runscope::testing::process_alive(pids.begin()->second));
  manager_->shutdown(false);
  std::vector<std::string> left;
  for (const auto& scope : backend_->find_scopes()) {
    if (scope.unit.starts_with(alloc_ + "-")) left.push_back(scope.unit);
  }
  EXPECT_THAT(left, ::testing::IsEmpty()) << "a scope of this test is left";
}

}  // namespace
}  // namespace runscope::daemon
