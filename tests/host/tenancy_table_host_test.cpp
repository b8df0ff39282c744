// Issue 12 point 6, through the real runscoped on this host's cgroupfs (v1), on a system-like
// private bus with the project's policy (dbus/org.runscope1.conf): every API method x {root, the
// task's owner, another member, an outsider} and the answer each must get; then the signals (only
// root and the owner hear of a task), the private state on disk, and [limits] with a reload.
// Each caller is a child that has become that user and talks to the daemon with the real client.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <fstream>
#include <thread>

#include "api/client.hpp"
#include "common/file.hpp"
#include "driver/credentials.hpp"
#include "support/daemon_process.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"
#include "support/tenancy_table.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

class ASharedRunscoped : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    if (::access("/usr/sbin/useradd", X_OK) != 0) GTEST_SKIP() << "useradd is not installed";
    members_.emplace();
    env_.emplace(testing::make_v1_env("tbl"));
    bus_ = std::make_unique<testing::PrivateBus>(testing::system_like_bus_config());
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    ::chmod(tmp_.path().c_str(), 0755);  // the state dir below is runscoped's to make
    config_ = tmp_.path() / "runscope.toml";
    write_config(2);
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config_, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << log();
    who_ = testing::callers_of(*members_);
  }
  void TearDown() override {
    if (!env_) return;
    if (daemon_) {
      api::ManagerClient root(bus_->address());
      for (const auto& t : root.list()) {
        if (t.state == "running") root.stop(TaskId(t.alloc, t.task), 0s);
      }
      daemon_.reset();
    }
    bus_.reset();
    testing::reap_zombies();
    env_->remove_parent();
  }
  // [limits] tasks = `tasks` for every member.
  void write_config(int tasks) {
    std::ofstream(config_) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                           << "[daemon]\nstate_dir = \"" << state_dir().string() << "\"\n"
                           << "[limits]\ntasks = " << tasks << "\n";
  }
  fs::path state_dir() const { return tmp_.path() / "state"; }
  std::string log() { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  api::ManagerClient client() const { return api::ManagerClient(bus_->address()); }
  std::string call_as(const driver::Credentials& who, const std::function<std::string(api::ManagerClient&)>& body) {
    return testing::as(who, [&] {
      api::ManagerClient c(bus_->address());
      return body(c);
    });
  }

  std::optional<testing::Members> members_;
  std::optional<testing::V1Env> env_;
  testing::TempDir tmp_;
  fs::path config_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::Callers who_;
};

TEST_F(ASharedRunscoped, AnswersEveryMethodAsTheTableSaysForEachKindOfCaller) {
  testing::expect_the_api_table(bus_->address(), who_);
}

TEST_F(ASharedRunscoped, TellsOnlyRootAndTheOwnerOfATasksChanges) {
  testing::expect_signals_only_to_root_and_owner(bus_->address(), who_, tmp_.path());
}

// Issue 12 point 2: what runscoped made is root's alone on disk; the owner reads its log anyway.
TEST_F(ASharedRunscoped, KeepsItsStateFromEveryoneButRoot) {
  ASSERT_EQ(call_as(who_.owner, [](auto& c) { c.start(testing::shell_spec_json("own", "t", "echo hello; exec sleep 300")); return std::string("ok"); }), "ok");
  for (const fs::path& dir : {state_dir(), state_dir() / "tasks", state_dir() / "tasks" / "own-t"}) {
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << dir;
    EXPECT_EQ(st.st_uid, 0u) << dir;
  }
  fs::path out = state_dir() / "tasks" / "own-t" / "stdout.log";
  EXPECT_EQ(testing::as(who_.owner, [&] { return std::to_string(::open(out.c_str(), O_RDONLY) >= 0); }), "0");
  EXPECT_EQ(testing::as(who_.owner, [&] { return std::to_string(::opendir((state_dir() / "tasks").c_str()) != nullptr); }), "0");
  EXPECT_TRUE(testing::wait_until([&] { return read_file_if_exists(out).value_or("") == "hello\n"; }, 10s));
}

// [limits] at the real daemon, and `systemctl reload` (SIGHUP) applying new ones to new starts.
TEST_F(ASharedRunscoped, RefusesAStartOverTheCallersLimitsUntilAReloadRaisesThem) {
  for (const char* alloc : {"q1", "q2"}) {
    ASSERT_EQ(call_as(who_.owner, [alloc](auto& c) { c.start(testing::shell_spec_json(alloc, "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  }
  std::string why;
  auto third = call_as(who_.owner, [&](auto& c) {
    try {
      c.start(testing::shell_spec_json("q3", "t", "exec sleep 300"));
      return std::string("ok");
    } catch (const Error& e) {
      return std::string(to_string(e.kind())) + ": " + e.what();
    }
  });
  EXPECT_THAT(third, HasSubstr("quota"));
  EXPECT_THAT(third, HasSubstr("tasks"));
  EXPECT_THAT(third, HasSubstr("2"));
  EXPECT_EQ(client().list().size(), 2u) << "a refused start left a task";
  EXPECT_EQ(call_as(who_.other, [](auto& c) { c.start(testing::shell_spec_json("q4", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  write_config(3);
  daemon_->process().signal(SIGHUP);
  auto said = notify_->wait_for("READY=1", 30s);
  ASSERT_TRUE(said) << log();
  EXPECT_THAT(*said, HasSubstr("[limits]"));
  EXPECT_EQ(call_as(who_.owner, [](auto& c) { c.start(testing::shell_spec_json("q3", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
}

}  // namespace
}  // namespace runscope
