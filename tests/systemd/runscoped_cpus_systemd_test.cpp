// A real runscoped on the systemd path inside the contained systemd (its API on a private bus,
// systemd on the contained system bus): a shared task and a `--cores 1` task, and the AllowedCPUs
// systemd reports for the partition slices and the scope, read with systemctl.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "common/cpuset.hpp"
#include "common/file.hpp"
#include "common/task_id.hpp"
#include "cpuset/topology.hpp"
#include "support/daemon_process.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"
#include "support/shell.hpp"
#include "systemd/contained.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using systemd_testing::eventually;
using systemd_testing::run_command;

class ARunscopedOnSystemd : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    if (!CpuSet::parse("0-1").is_subset_of(cpuset::Topology::read().online())) GTEST_SKIP() << "needs CPUs 0 and 1";
    bus_ = std::make_unique<testing::PrivateBus>();
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    config_ = tmp_.path() / "runscope.toml";
    std::ofstream(config_) << "[cgroups]\nmanager = \"systemd\"\nparent = \"" << parent_ << ".slice\"\n"
                           << "[cpuset]\nreservable_cores = \"0-1\"\nmin_shared_cores = 1\n"
                           << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
    started_ = true;
  }
  void TearDown() override {
    if (!started_) return;
    for (const auto& task : {"shared", "pinned"}) run({"kill", alloc_, task});
    daemon_.reset();
    bus_.reset();
    // The parent slice takes its partition slices (and anything left in them) with it.
    testing::run_ignoring_status("systemctl stop " + parent_ + ".slice >/dev/null 2>&1");
  }
  void start_daemon() {
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config_, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << log();
  }
  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }
  std::string log() { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  static std::string show(const std::string& unit, const std::string& property) {
    return trim(run_command("systemctl show -p " + property + " --value " + unit));
  }
  std::string shared_slice() const { return parent_ + "-shared.slice"; }

  bool started_ = false;
  std::string parent_ = "rt" + std::to_string(::getpid()) + "d";
  std::string alloc_ = systemd_testing::unique_name("alloc");
  testing::TempDir tmp_;
  fs::path config_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::RunscopeCli cli_;
};

TEST_F(ARunscopedOnSystemd, PinsACoresTaskAndGivesTheCoreBackToTheSharedSlice) {
  start_daemon();
  auto shared = run({"run", "--alloc", alloc_, "--task", "shared", "--", "/bin/sleep", "300"});
  ASSERT_EQ(shared.code, 0) << shared.err << log();
  EXPECT_EQ(show(shared_slice(), "AllowedCPUs"), "0-1");
  auto shared_scope = TaskId(alloc_, "shared").unit_name();
  EXPECT_EQ(show(shared_scope, "Slice"), shared_slice());

  auto pinned = run({"run", "--cores", "1", "--alloc", alloc_, "--task", "pinned", "--", "/bin/sleep", "300"});
  ASSERT_EQ(pinned.code, 0) << pinned.err << log();
  auto pinned_scope = TaskId(alloc_, "pinned").unit_name();
  EXPECT_EQ(show(pinned_scope, "Slice"), parent_ + "-reserved.slice");
  auto mine = CpuSet::parse(show(pinned_scope, "AllowedCPUs"));
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(show(shared_slice(), "AllowedCPUs"), (CpuSet::parse("0-1") - mine).to_string());
  EXPECT_EQ(show(parent_ + "-reserved.slice", "AllowedCPUs"), "0-1");

  ASSERT_EQ(run({"stop", "--timeout", "5s", alloc_, "pinned"}).code, 0) << log();
  EXPECT_TRUE(eventually([&] { return show(shared_slice(), "AllowedCPUs") == "0-1"; }, 10s))
      << show(shared_slice(), "AllowedCPUs");
  ASSERT_EQ(run({"stop", "--timeout", "5s", alloc_, "shared"}).code, 0) << log();
  for (const auto& scope : {pinned_scope, shared_scope}) {
    EXPECT_TRUE(eventually([&] { return show(scope, "ActiveState") == "inactive"; }, 10s)) << scope;
  }
  EXPECT_EQ(trim(run_command("systemd-cgls --no-pager /" + parent_ + ".slice 2>/dev/null | grep -c sleep || true")),
            "0");
}

}  // namespace
}  // namespace runscope
