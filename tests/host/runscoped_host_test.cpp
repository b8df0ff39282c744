// A real runscoped on a private bus and the host's v1 cgroupfs (a relative parent
// runscope-test-<pid>-..., a temp state dir), driven by the real `runscope` CLI.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

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
    write_config("");
  }
  // The test's config plus `extra` (whole tables, e.g. "[task]\ndenied_uids = [0]\n").
  void write_config(const std::string& extra) {
    std::ofstream(config_) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                           << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n"
                           << extra;
  }
  // SIGHUP, then the READY=1 that ends the reload; returns every notify datagram seen.
  std::string reload() {
    daemon_->process().signal(SIGHUP);
    auto said = notify_->wait_for("READY=1", 30s);
    EXPECT_TRUE(said) << read_file(tmp_.path() / "daemon.log");
    return said.value_or("");
  }
  std::string daemon_log() { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
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

TEST_F(ARunscopedOnTheBus, RefusesANewlyDeniedUidAfterSighupAndAllowsItAgainWhenLifted) {
  start_daemon();
  ASSERT_EQ(run({"run", "--wait", "--alloc", "h1", "--task", "before", "--", "/bin/true"}).code, 0);
  write_config("[task]\ndenied_uids = [0]\n");
  auto said = reload();
  EXPECT_NE(said.find("RELOADING=1"), std::string::npos) << said;
  EXPECT_NE(said.find("STATUS=reloaded [task]"), std::string::npos) << said;
  auto refused = run({"run", "--alloc", "h1", "--task", "denied", "--", "/bin/true"});
  EXPECT_EQ(refused.code, 126) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("denied_uids"), std::string::npos) << refused.err;

  write_config("");
  reload();
  EXPECT_EQ(run({"run", "--wait", "--alloc", "h1", "--task", "after", "--", "/bin/true"}).code, 0);
}

TEST_F(ARunscopedOnTheBus, KeepsTheRunningConfigWhenTheNewFileIsBadAndNamesFileAndLine) {
  write_config("[task]\ndenied_uids = [0]\n");
  start_daemon();
  write_config("[task]\nkill_timeout = \"soon\"\n");  // the value is on line 7
  auto said = reload();
  EXPECT_NE(said.find("reload refused"), std::string::npos) << said;
  EXPECT_NE(daemon_log().find(config_.string() + ":7"), std::string::npos) << daemon_log();
  EXPECT_EQ(run({"run", "--alloc", "h2", "--task", "still-denied", "--", "/bin/true"}).code, 126);
  EXPECT_EQ(run({"ps"}).code, 0);
}

TEST_F(ARunscopedOnTheBus, StopsWithTheKillSignalOfTheReloadedConfig) {
  start_daemon();
  // USR1 is the only way out with code 7: it is the reloaded kill_signal that stopped it.
  ASSERT_EQ(run({"run", "--alloc", "h3", "--task", "trap", "--", "/bin/sh", "-c",
                 "trap 'exit 7' USR1; echo up; while :; do sleep 0.1; done"})
                .code,
            0);
  ASSERT_TRUE(testing::wait_until([&] { return run({"logs", "h3", "trap"}).out == "up\n"; }, 30s));
  write_config("[task]\nkill_signal = \"SIGUSR1\"\nkill_timeout = \"20s\"\n");
  reload();
  EXPECT_EQ(run({"stop", "h3", "trap"}).code, 0);
  auto inspected = nlohmann::json::parse(run({"inspect", "h3", "trap"}).out);
  EXPECT_EQ(inspected["exit_code"], 7) << inspected.dump();
}

TEST_F(ARunscopedOnTheBus, NamesTheCgroupsSectionAsNeedingARestartOnReload) {
  start_daemon();
  std::ofstream(config_) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "-moved\"\n"
                         << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
  auto said = reload();
  EXPECT_NE(said.find("[cgroups] changed, takes effect after a restart"), std::string::npos) << said;
  EXPECT_NE(daemon_log().find("[cgroups] changed"), std::string::npos) << daemon_log();
  ASSERT_EQ(run({"run", "--wait", "--alloc", "h4", "--task", "here", "--", "/bin/true"}).code, 0);
}

// Service managers give a soft limit of 1024 fds; the daemon needs a few per task.
TEST_F(ARunscopedOnTheBus, RaisesItsOwnFdLimitAndGivesTasksTheOriginalOne) {
  rlimit mine{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max == mine.rlim_cur || mine.rlim_max == RLIM_INFINITY || mine.rlim_cur > 1024) {
    rlimit lowered = mine;
    lowered.rlim_cur = std::min<rlim_t>(1024, mine.rlim_max) - 24;  // below the hard limit either way
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  }
  rlimit given{};
  ::getrlimit(RLIMIT_NOFILE, &given);
  start_daemon();
  ::setrlimit(RLIMIT_NOFILE, &mine);
  std::istringstream limits(read_file("/proc/" + std::to_string(daemon_->process().pid()) + "/limits"));
  std::string soft, hard;
  for (std::string line; std::getline(limits, line);) {
    if (line.rfind("Max open files", 0) == 0) std::istringstream(line.substr(14)) >> soft >> hard;
  }
  EXPECT_EQ(soft, std::to_string(given.rlim_max));
  EXPECT_EQ(hard, std::to_string(given.rlim_max));
  ASSERT_EQ(run({"run", "--wait", "--alloc", "fd", "--task", "ulimit", "--", "/bin/sh", "-c", "ulimit -n"}).code, 0);
  EXPECT_EQ(run({"logs", "fd", "ulimit"}).out, std::to_string(given.rlim_cur) + "\n");
}

}  // namespace
}  // namespace runscope
