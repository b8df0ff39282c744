// Entering a task on the systemd path, in the contained systemd: the entered command is inside
// the task's scope (its /proc/PID/cgroup names the scope, systemd counts it among the scope's
// tasks), answers its exit code, and dies when the task is killed.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <future>

#include "common/error.hpp"
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

class EnteringATaskOnSystemd : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
#ifndef RUNSCOPE_SHIM_BINARY
    GTEST_SKIP() << "runscope-shim was not built";
#else
    runscope::testing::become_subreaper();
    bus_ = std::make_unique<systemd::SdbusSystemdManager>();
    backend_ = std::make_unique<systemd::SystemdBackend>(*bus_);
    launcher_ = std::make_unique<ExecShimLauncher>(RUNSCOPE_SHIM_BINARY);
    ManagerOptions options;
    options.state_dir = tmp_.path() / "state";
    manager_ = std::make_unique<TaskManager>(*backend_, nullptr, *launcher_, clock_, options);
#endif
  }
  void TearDown() override {
    if (manager_) manager_->shutdown(false);
    manager_.reset();
    runscope::testing::reap_zombies();
  }
  std::future<int> enter(const TaskId& id, const std::string& script, int out) {
    auto fds = std::make_shared<std::array<UniqueFd, 3>>();
    (*fds)[0].reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    (*fds)[1].reset(::dup(out));
    (*fds)[2].reset(::dup(out));
    auto promise = std::make_shared<std::promise<int>>();
    auto status = promise->get_future();
    manager_->enter(id, EnterRequest{driver::EnterSpec{"sh", {"-c", script}, {}, false, {}, {}}, fds}, Caller{},
                    [promise](Outcome<int> o) {
                      try {
                        promise->set_value(o.get());
                      } catch (...) {
                        promise->set_exception(std::current_exception());
                      }
                    });
    return status;
  }
  static std::string read_all(int fd) {
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    return text;
  }

  SteadyClock clock_;
  runscope::testing::TempDir tmp_;
  std::unique_ptr<systemd::SdbusSystemdManager> bus_;
  std::unique_ptr<systemd::SystemdBackend> backend_;
  std::unique_ptr<ShimLauncher> launcher_;
  std::unique_ptr<TaskManager> manager_;
};

TEST_F(EnteringATaskOnSystemd, RunsTheCommandInsideTheTasksScope) {
  const TaskId id(systemd_testing::unique_name("ent"), "web");
  manager_->start(runscope::testing::shell_task(id.alloc(), id.task(), "exec sleep 300"), Caller{});
  const std::string unit = id.unit_name();
  Pipe out = make_pipe(O_CLOEXEC);
  auto status = enter(id, "grep '^0::' /proc/self/cgroup; exit 6", out.write.get());
  ASSERT_EQ(status.wait_for(60s), std::future_status::ready);
  EXPECT_EQ(status.get(), 6);
  out.write.reset();
  EXPECT_EQ(read_all(out.read.get()), "0::/runscope.slice/" + unit + "\n");

  // systemd lists it among the scope's processes (GetUnitProcesses reads the unit's cgroup: no
  // pids controller on this v2 for TasksCurrent), and the task's kill takes it.
  Pipe quiet = make_pipe(O_CLOEXEC);
  auto sleeper = enter(id, "exec sleep 301", quiet.write.get());
  const std::string ask = "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
                          "org.freedesktop.systemd1.Manager GetUnitProcesses s " + unit;
  EXPECT_TRUE(systemd_testing::eventually(
      [&] { return systemd_testing::run_command(ask).find("\"sleep 301\"") != std::string::npos; }, 30s))
      << systemd_testing::run_command(ask);
  manager_->destroy(id, Caller{});
  ASSERT_EQ(sleeper.wait_for(60s), std::future_status::ready);
  EXPECT_EQ(sleeper.get(), 128 + SIGKILL);
}

}  // namespace
}  // namespace runscope::daemon
