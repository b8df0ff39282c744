// A real runscoped on a private bus and the host's v1 cgroupfs (a relative parent
// runscope-test-<pid>-..., a temp state dir), driven by the real `runscope` CLI.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/file.hpp"
#include "support/daemon_process.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ARunscopedOnTheBus : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    // A parent per test, so one test's leftovers can't fail another.
    env_.emplace(testing::make_v1_env(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    bus_ = std::make_unique<testing::PrivateBus>();
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    config_ = tmp_.path() / "runscope.toml";
    std::ofstream(config_) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                           << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
  }
  void TearDown() override {
    if (!env_) return;
    if (daemon_) {
      // Whatever a failed test left running goes, through the daemon, before the cgroups do.
      auto ps = run({"ps", "--json"});
      if (ps.code == 0) {
        for (const auto& t : nlohmann::json::parse(ps.out)) {
          run({"kill", t["alloc"].get<std::string>(), t["task"].get<std::string>()});
        }
      }
      daemon_.reset();
    }
    bus_.reset();
    env_->remove_parent();
  }
  void start_daemon(const std::vector<std::string>& extra_env = {}) {
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config_, tmp_.path() / "daemon.log", *notify_,
                                                       extra_env);
    auto said = notify_->wait_for("READY=1", 30s);
    ASSERT_TRUE(said) << read_file_if_exists(tmp_.path() / "daemon.log").value_or("");
    EXPECT_NE(said->find("STATUS="), std::string::npos);
  }
  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }

  std::optional<testing::V1Env> env_;
  testing::TempDir tmp_;
  fs::path config_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::RunscopeCli cli_;
};

TEST_F(ARunscopedOnTheBus, RunsInspectsReportsAndStopsTasks) {
  start_daemon();
  auto started = run({"run", "--alloc", "d1", "--task", "sleeper", "--", "/bin/sh", "-c", "echo up; exec sleep 300"});
  ASSERT_EQ(started.code, 0) << started.err;
  EXPECT_EQ(started.out, "d1 sleeper\n");
  auto waited = run({"run", "--wait", "--alloc", "d1", "--task", "three", "--", "/bin/sh", "-c", "echo out; exit 3"});
  EXPECT_EQ(waited.code, 3) << waited.err;

  auto ps = run({"ps"});
  EXPECT_NE(ps.out.find("sleeper"), std::string::npos) << ps.out;
  auto inspected = nlohmann::json::parse(run({"inspect", "d1", "sleeper"}).out);
  EXPECT_EQ(inspected["state"], "running");
  pid_t pid = inspected["pid"].get<pid_t>();
  EXPECT_TRUE(testing::process_alive(pid));
  EXPECT_NE(inspected["cgroup"].get<std::string>().find(env_->parent), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(run({"inspect", "d1", "three"}).out)["exit_code"], 3);

  auto stats = nlohmann::json::parse(run({"stats", "--json", "d1", "sleeper"}).out);
  EXPECT_GE(stats["pids_current"].get<int>(), 1);
  EXPECT_EQ(run({"logs", "d1", "three"}).out, "out\n");

  EXPECT_EQ(run({"stop", "--timeout", "5s", "d1", "sleeper"}).code, 0);
  EXPECT_EQ(nlohmann::json::parse(run({"inspect", "d1", "sleeper"}).out)["state"], "killed");
  EXPECT_TRUE(testing::wait_until([&] { return !testing::process_alive(pid); }, 10s));
  EXPECT_EQ(run({"inspect", "d1", "nope"}).code, 127);
}

TEST_F(ARunscopedOnTheBus, LeavesTasksRunningOnSigtermAndTheNextOneReattachesThem) {
  start_daemon();
  ASSERT_EQ(run({"run", "--alloc", "r1", "--task", "keep", "--", "/bin/sleep", "300"}).code, 0);
  pid_t pid = nlohmann::json::parse(run({"inspect", "r1", "keep"}).out)["pid"].get<pid_t>();
  auto status = daemon_->terminate();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->shell_code(), 0);
  EXPECT_TRUE(testing::process_alive(pid));
  EXPECT_EQ(run({"ps"}).code, 69);  // no daemon: the hint

  start_daemon();
  auto inspected = nlohmann::json::parse(run({"inspect", "r1", "keep"}).out);
  EXPECT_EQ(inspected["state"], "running");
  EXPECT_EQ(inspected["pid"], pid);
  EXPECT_EQ(run({"kill", "r1", "keep"}).code, 0);
  EXPECT_TRUE(testing::wait_until([&] { return !testing::process_alive(pid); }, 10s));
}

TEST_F(ARunscopedOnTheBus, PetsTheWatchdogWhenTheUnitAsks) {
  start_daemon({"WATCHDOG_USEC=400000"});
  EXPECT_TRUE(notify_->wait_for("WATCHDOG=1", 30s));
  EXPECT_TRUE(notify_->wait_for("WATCHDOG=1", 30s));  // and again
}

TEST_F(ARunscopedOnTheBus, ReloadsOnSighupAndKeepsServing) {
  start_daemon();
  std::ofstream(config_, std::ios::app) << "log_level = \"debug\"\n";  // [daemon] is the last table
  daemon_->process().signal(SIGHUP);
  auto said = notify_->wait_for("READY=1", 30s);
  ASSERT_TRUE(said);
  EXPECT_NE(said->find("RELOADING=1"), std::string::npos) << *said;
  EXPECT_TRUE(testing::wait_until(
      [&] { return read_file(tmp_.path() / "daemon.log").find("reloaded") != std::string::npos; }, 30s));
  EXPECT_EQ(run({"ps"}).code, 0);
}

TEST_F(ARunscopedOnTheBus, RefusesABadConfigWithExit78AndTouchesNothing) {
  std::ofstream(config_) << "[cgroups]\nparent = \"" << env_->parent << "\"\nbogus = 1\n"
                         << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
  testing::DaemonProcess daemon(bus_->address(), config_, tmp_.path() / "daemon.log", *notify_);
  SteadyClock clock;
  auto status = daemon.process().wait(Deadline(clock, 30s));
  ASSERT_TRUE(status);
  EXPECT_EQ(status->shell_code(), 78);
  auto log = read_file(tmp_.path() / "daemon.log");
  EXPECT_NE(log.find("bogus"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp_.path() / "state"));
  EXPECT_TRUE(env_->leftovers().empty());
  for (const auto& [controller, mount] : env_->layout.v1_mounts) {
    EXPECT_FALSE(fs::exists(mount / fs::path(env_->own.at(controller)).relative_path() / env_->parent)) << controller;
  }
}

}  // namespace
}  // namespace runscope
