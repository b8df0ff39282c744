// Issue 12 point 6 on the systemd path: the same table as tests/host/tenancy_table_host_test.cpp
// (every API method x {root, owner, other member, outsider}, and who hears of a task's changes),
// with a real runscoped that asks the contained systemd for scopes, its API on a system-like
// private bus with the project's policy.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "api/client.hpp"
#include "common/file.hpp"
#include "support/daemon_process.hpp"
#include "support/private_bus.hpp"
#include "support/shell.hpp"
#include "support/tenancy_table.hpp"
#include "systemd/contained.hpp"

namespace runscope {
namespace {

using namespace std::chrono_literals;

class ASharedRunscopedOnSystemd : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    if (::access("/usr/sbin/useradd", X_OK) != 0) GTEST_SKIP() << "useradd is not installed";
    members_.emplace();
    bus_ = std::make_unique<testing::PrivateBus>(testing::system_like_bus_config());
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    ::chmod(tmp_.path().c_str(), 0755);
    auto config = tmp_.path() / "runscope.toml";
    std::ofstream(config) << "[cgroups]\nmanager = \"systemd\"\nparent = \"" << parent_ << ".slice\"\n"
                          << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << read_file_if_exists(tmp_.path() / "daemon.log").value_or("");
    who_ = testing::callers_of(*members_);
  }
  void TearDown() override {
    if (!members_) return;
    if (daemon_) {
      try {
        api::ManagerClient root(bus_->address());
        for (const auto& t : root.list()) {
          if (t.state == "running") root.stop(TaskId(t.alloc, t.task), 0s);
        }
      } catch (const std::exception&) {
      }
      daemon_.reset();
    }
    bus_.reset();
    testing::run_ignoring_status("systemctl stop " + parent_ + ".slice >/dev/null 2>&1");
  }

  std::string parent_ = "rstbl" + std::to_string(::getpid());
  std::optional<testing::Members> members_;
  testing::TempDir tmp_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::Callers who_;
};

TEST_F(ASharedRunscopedOnSystemd, AnswersEveryMethodAsTheTableSaysForEachKindOfCaller) {
  testing::expect_the_api_table(bus_->address(), who_);
}

TEST_F(ASharedRunscopedOnSystemd, TellsOnlyRootAndTheOwnerOfATasksChanges) {
  testing::expect_signals_only_to_root_and_owner(bus_->address(), who_, tmp_.path());
}

}  // namespace
}  // namespace runscope
