// Fault: the bus connection cut under runscoped (its dbus-daemon stopped) with tasks running.
// Decided behaviour (docs/faults.md): runscoped exits 75 with a log line saying so, leaving its
// tasks running, and the unit's Restart=on-failure starts a new one, which reattaches them. It
// must not die of SIGABRT (sdbus-c++'s loop thread used to let the exception escape).
#include <gtest/gtest.h>

#include <fstream>

#include "faults/fault_harness.hpp"
#include "support/held_child.hpp"

namespace runscope {
namespace {

using namespace std::chrono_literals;

constexpr int kExitBusLost = 75;
constexpr int kEndedCode = 9;

TEST(ACutBusConnection, MakesRunscopedExitCleanlyWithItsTasksRunningAndTheNextOneReattachesThem) {
  if (auto why = testing::fault_skip_reason()) GTEST_SKIP() << *why;
  testing::become_subreaper();
  testing::TempDir tmp;
  testing::FaultDaemon daemon("buscut");
  testing::Bystanders bystanders(daemon.env(), "buscut");
  daemon.start();
  auto go = tmp.path() / "go";
  TaskId runner("bc", "runner"), ender("bc", "ender");
  daemon.client().start(testing::shell_spec("bc", runner.task(), "exec sleep 600").dump());
  daemon.client().start(testing::shell_spec("bc", ender.task(), "while [ ! -e " + go.string() +
                                            " ]; do sleep 0.02; done; exit " + std::to_string(kEndedCode)).dump());
  auto runner_pid = testing::identify(daemon.client().inspect(runner)["pid"].get<pid_t>());
  ASSERT_TRUE(runner_pid);

  daemon.replace_bus();
  auto status = daemon.wait_exit(30s);
  ASSERT_TRUE(status) << "runscoped did not exit after losing its bus";
  EXPECT_EQ(status->shell_code(), kExitBusLost) << daemon.log();
  EXPECT_NE(daemon.log().find("lost the bus connection"), std::string::npos) << daemon.log();
  EXPECT_TRUE(runner_pid->alive()) << "a task died with the daemon's bus";

  std::ofstream(go) << "go";  // ends while no daemon runs
  testing::reap_zombies();
  daemon.start();  // what Restart=on-failure does
  EXPECT_EQ(daemon.client().inspect(runner)["state"], "running");
  EXPECT_EQ(daemon.client().inspect(runner)["pid"], runner_pid->pid);
  EXPECT_TRUE(testing::wait_until([&] { return daemon.client().inspect(ender)["state"] == "exited"; }, 30s));
  EXPECT_EQ(daemon.client().inspect(ender)["exit_code"], kEndedCode);

  daemon.client().stop(runner, 2s);
  EXPECT_FALSE(runner_pid->alive());
  EXPECT_TRUE(testing::wait_until([&] { return daemon.cgroups().empty(); }, 10s)) << "cgroups left";
  EXPECT_EQ(bystanders.disturbed(), std::vector<std::string>{});
}

}  // namespace
}  // namespace runscope
