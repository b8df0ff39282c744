// The real `runscope` binary against the D-Bus adaptor over the in-memory TaskService, on a
// private bus: what each subcommand sends, prints and exits with.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/bus_server.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"

namespace runscope {
namespace {

using testing::CliResult;

class CliAgainstADaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    bus_ = std::make_unique<testing::PrivateBus>();
    service_.log_dir = cli_.dir();
    server_ = std::make_unique<testing::BusServer>(bus_->address(), service_);
  }
  void TearDown() override {
    server_.reset();
    bus_.reset();
  }
  CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }

  testing::FakeTaskService service_;
  testing::RunscopeCli cli_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::BusServer> server_;
};

TEST_F(CliAgainstADaemon, RunSendsTheTaskAndPrintsItsId) {
  auto r = run({"run", "--alloc", "a-1", "--task", "web", "--env", "K=V", "--memory-max", "64M", "--cores", "1",
                "--", "/bin/echo", "hi", "there"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "a-1 web\n");
  auto spec = service_.last_spec();
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->config["command"], "/bin/echo");
  EXPECT_EQ(spec->config["args"], nlohmann::json({"hi", "there"}));
  EXPECT_EQ(service_.last_caller()->uid, ::getuid());
}

TEST_F(CliAgainstADaemon, RunWaitReturnsTheTasksExitCode) {
  auto proc = cli_.start({"--bus", bus_->address(), "run", "--wait", "--alloc", "w", "--task", "t", "--", "/bin/true"});
  SteadyClock clock;
  Deadline deadline(clock, std::chrono::seconds(20));
  while (service_.list({}).empty() && !deadline.expired()) clock.sleep_for(std::chrono::milliseconds(5));
  ASSERT_FALSE(service_.list({}).empty());
  service_.finish(TaskId("w", "t"), 7);
  EXPECT_EQ(proc.reap().shell_code(), 7) << cli_.err();
}

TEST_F(CliAgainstADaemon, RunTakesATaskFile) {
  auto file = cli_.dir() / "task.toml";
  std::ofstream(file) << "alloc = \"f\"\ntask = \"from-file\"\n[config]\ncommand = \"/bin/sleep\"\nargs = [\"1\"]\n";
  auto r = run({"run", "--file", file.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "f from-file\n");
  EXPECT_EQ(service_.last_spec()->config["args"], nlohmann::json({"1"}));
}

TEST_F(CliAgainstADaemon, PsInspectStatsAndCpusPrintWhatTheDaemonSays) {
  ASSERT_EQ(run({"run", "--alloc", "p", "--task", "t", "--", "/bin/true"}).code, 0);
  auto ps = run({"ps"});
  EXPECT_EQ(ps.code, 0);
  EXPECT_NE(ps.out.find("ALLOC"), std::string::npos);
  EXPECT_NE(ps.out.find("running"), std::string::npos) << ps.out;
  EXPECT_EQ(nlohmann::json::parse(run({"ps", "--json"}).out)[0]["task"], "t");
  auto inspect = nlohmann::json::parse(run({"inspect", "p", "t"}).out);
  EXPECT_EQ(inspect["state"], "running");
  EXPECT_TRUE(inspect.contains("cgroup"));
  EXPECT_EQ(nlohmann::json::parse(run({"stats", "--json", "p", "t"}).out)["cpu_user_usec"], 1500);
  EXPECT_EQ(nlohmann::json::parse(run({"cpus", "--json"}).out)["shared"], "0,2-3");
  EXPECT_NE(run({"fingerprint", "--daemon"}).out.find("cgroup.version=fake"), std::string::npos);
}

TEST_F(CliAgainstADaemon, StopKillAndSignalReachTheTask) {
  ASSERT_EQ(run({"run", "--alloc", "s", "--task", "t", "--", "/bin/true"}).code, 0);
  EXPECT_EQ(run({"signal", "s", "t", "HUP"}).code, 0);
  ASSERT_EQ(service_.signals_sent().size(), 1u);
  EXPECT_EQ(service_.signals_sent()[0].second, 1);
  EXPECT_EQ(run({"kill", "s", "t"}).code, 0);
  EXPECT_EQ(service_.last_stop_timeout(), std::optional<Duration>(std::chrono::microseconds(1)));
  EXPECT_EQ(run({"stop", "--timeout", "2s", "s", "t"}).code, 0);
  EXPECT_EQ(service_.last_stop_timeout(), std::optional<Duration>(std::chrono::seconds(2)));
}

TEST_F(CliAgainstADaemon, LogsPrintsTheTasksFiles) {
  ASSERT_EQ(run({"run", "--alloc", "l", "--task", "t", "--", "/bin/true"}).code, 0);
  std::ofstream(cli_.dir() / "l-t.stdout") << "hello out\n";
  std::ofstream(cli_.dir() / "l-t.stderr") << "hello err\n";
  service_.finish(TaskId("l", "t"), 0);
  auto r = run({"logs", "-f", "l", "t"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "hello out\n");
  EXPECT_EQ(r.err, "hello err\n");
}

TEST_F(CliAgainstADaemon, DaemonErrorsBecomeExitCodesAndOneLine) {
  auto missing = run({"inspect", "no", "such"});
  EXPECT_EQ(missing.code, 127);  // NotFound, as exec's missing command
  EXPECT_EQ(missing.err, "runscope: no task no/such\n");
  auto bad = run({"signal", "no", "such", "NOPE"});
  EXPECT_EQ(bad.code, 64);
}

TEST_F(CliAgainstADaemon, WithoutADaemonItSaysHowToStartOne) {
  server_.reset();
  auto r = run({"ps"});
  EXPECT_EQ(r.code, 69);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("systemctl start runscoped"), std::string::npos) << r.err;
}

TEST(TheCli, WithoutABusItSaysHowToStartTheDaemon) {
  testing::RunscopeCli cli;
  auto r = cli.run({"--bus", "unix:path=/nonexistent/runscope-test-bus", "ps"});
  EXPECT_EQ(r.code, 69);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("runscoped is not running"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace runscope
