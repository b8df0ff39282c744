// The Nomad plugin's whole task lifecycle, driven by a real client: go-plugin's Go client and
// grpc-go (tests/nomad/goclient/lifecycle_test.go) against runscope-nomad-driver, in front of a
// real runscoped on a private bus and this host's v1 cgroupfs. Nomad itself is not installable
// on these machines (it is not in Debian, and there is no network for HashiCorp's archive), so
// the Go client does what its agent does: launch, SetConfig, Fingerprint, StartTask, InspectTask,
// TaskStats, SignalTask, WaitTask, TaskEvents, StopTask, DestroyTask, ExecTask, a plugin killed and
// RecoverTask from a new one, bad task configs, and a daemon that is not there.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/file.hpp"
#include "driver/spawn.hpp"
#include "support/daemon_process.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"

extern char** environ;

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ANomadAgentOnRunscoped : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    env_.emplace(testing::make_v1_env("nomad"));
    bus_ = std::make_unique<testing::PrivateBus>();
    empty_bus_ = std::make_unique<testing::PrivateBus>();  // no runscoped on this one
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    auto config = tmp_.path() / "runscope.toml";
    std::ofstream(config) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                          << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << read_file_if_exists(tmp_.path() / "daemon.log").value_or("");
    fs::create_directories(tmp_.path() / "alloc");
  }
  void TearDown() override {
    if (!env_) return;
    if (daemon_) {
      for (const auto& t : tasks()) run({"kill", t["alloc"].get<std::string>(), t["task"].get<std::string>()});
      daemon_.reset();
    }
    bus_.reset();
    empty_bus_.reset();
    env_->remove_parent();
  }
  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }
  nlohmann::json tasks() {
    auto ps = run({"ps", "--json"});
    return ps.code == 0 ? nlohmann::json::parse(ps.out) : nlohmann::json::array();
  }

  std::optional<testing::V1Env> env_;
  testing::TempDir tmp_;
  std::unique_ptr<testing::PrivateBus> bus_, empty_bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::RunscopeCli cli_;
};

TEST_F(ANomadAgentOnRunscoped, WalksTasksThroughTheirWholeLifeOverThePluginProtocol) {
  driver::SpawnSpec spec;
  spec.argv = {RUNSCOPE_NOMAD_GOCLIENT, "-test.v", "-test.run", "TestTaskLifecycleAgainstRunscoped"};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "TMPDIR=", 7) != 0) spec.env.emplace_back(*e);
  }
  // The plugins' socket folders, including the one of the plugin the client SIGKILLs, go here.
  spec.env.push_back("TMPDIR=" + tmp_.path().string());
  auto alloc = "nomad-" + std::to_string(::getpid());
  for (std::string var : {"RUNSCOPE_NOMAD_DRIVER=" RUNSCOPE_NOMAD_DRIVER_BINARY,
                          "RUNSCOPE_NOMAD_DESCRIPTORS=" RUNSCOPE_NOMAD_DESCRIPTORS}) {
    spec.env.push_back(var);
  }
  spec.env.push_back("RUNSCOPE_NOMAD_TEST_BUS=" + bus_->address());
  spec.env.push_back("RUNSCOPE_NOMAD_TEST_EMPTY_BUS=" + empty_bus_->address());
  spec.env.push_back("RUNSCOPE_NOMAD_TEST_DIR=" + (tmp_.path() / "alloc").string());
  spec.env.push_back("RUNSCOPE_NOMAD_TEST_ALLOC=" + alloc);
  spec.stdout_path = tmp_.path() / "client.log";
  spec.stderr_path = tmp_.path() / "client.log";
  driver::CloneSpawner spawner;
  auto client = spawner.spawn(spec, nullptr);
  SteadyClock clock;
  auto status = client.wait(Deadline(clock, 240s));
  auto log = read_file_if_exists(tmp_.path() / "client.log").value_or("");
  ASSERT_TRUE(status) << "the Go client ran over 240 s:\n" << log;
  std::cout << log;  // the client's steps, as it logged them
  EXPECT_EQ(status->shell_code(), 0) << log << "\nrunscoped:\n" << read_file(tmp_.path() / "daemon.log");
  EXPECT_NE(log.find("--- PASS: TestTaskLifecycleAgainstRunscoped"), std::string::npos) << log;

  // Every task the client started was destroyed through the plugin: nothing left in runscoped
  // and no cgroup left under the test's parent.
  for (const auto& t : tasks()) ADD_FAILURE() << "left in runscoped: " << t.dump();
  EXPECT_TRUE(testing::wait_until([&] { return env_->leftovers().empty(); }, 10s));
}

}  // namespace
}  // namespace runscope
