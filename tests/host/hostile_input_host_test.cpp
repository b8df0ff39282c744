// The spec rows of tests/data/hostile_inputs.tsv (and the daemon-only rows) sent to a real
// runscoped (private bus, this host's v1 cgroupfs under a per-process parent, a temp state dir):
// each must come back as its named D-Bus error, and leave nothing made: no task listed, no state
// folder, no cgroup.
#include <gtest/gtest.h>

#include <fstream>

#include "api/client.hpp"
#include "api/errors.hpp"
#include "common/file.hpp"
#include "support/daemon_process.hpp"
#include "support/hostile_table.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += len;
  }
  return true;
}

class ARunscopedUnderHostileInput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    env_.emplace(testing::make_v1_env(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    bus_ = std::make_unique<testing::PrivateBus>();
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    auto config = tmp_.path() / "runscope.toml";
    std::ofstream(config) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                          << "[daemon]\nstate_dir = \"" << state_dir().string() << "\"\n";
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << daemon_log();
    client_ = std::make_unique<api::ManagerClient>(bus_->address());
  }
  void TearDown() override {
    if (!env_) return;
    if (client_) {
      try {
        for (const auto& t : client_->list()) client_->destroy(TaskId(t.alloc, t.task));
      } catch (const std::exception&) {
        // the parent's teardown kills what is left
      }
    }
    client_.reset();
    daemon_.reset();
    bus_.reset();
    env_->remove_parent();
  }
  fs::path state_dir() const { return tmp_.path() / "state"; }
  std::string daemon_log() const { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  std::size_t state_folders() const {
    std::error_code ec;
    auto tasks = state_dir() / "tasks";
    if (!fs::exists(tasks, ec)) return 0;
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(tasks), fs::directory_iterator()));
  }
  // The named error StartTask answered, or "ok".
  std::string start(const std::string& spec, std::string& message) {
    try {
      client_->start(spec);
      return "ok";
    } catch (const Error& e) {
      message = e.what();
      return api::error_name(e.kind()).substr(std::string(api::kErrorPrefix).size());
    }
  }

  std::optional<testing::V1Env> env_;
  testing::TempDir tmp_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  std::unique_ptr<api::ManagerClient> client_;
};

TEST_F(ARunscopedUnderHostileInput, RefusesEveryHostileSpecInTheTableAndMakesNothing) {
  auto cases = testing::hostile_cases("spec");
  auto daemon_cases = testing::hostile_cases("daemon");
  cases.insert(cases.end(), daemon_cases.begin(), daemon_cases.end());
  for (const auto& c : cases) {
    if (c.expect == "ok") continue;  // accepted specs are the other host tests' business
    std::string message;
    if (!valid_utf8(c.input)) {
      // D-Bus strings are UTF-8: the client's library refuses to send it, so the daemon never sees it.
      EXPECT_EQ(start(c.input, message), "BusError") << c.where() << ": " << message;
      EXPECT_NE(message.find("Failed to serialize a string"), std::string::npos) << c.where() << ": " << message;
    } else {
      EXPECT_EQ(start(c.input, message), c.expect) << c.where() << ": " << message;
      EXPECT_NE(message.find(c.message), std::string::npos) << c.where() << ": lacks \"" << c.message << "\": " << message;
    }
    EXPECT_TRUE(client_->list().empty()) << c.where() << ": a task is listed";
    EXPECT_EQ(state_folders(), 0u) << c.where() << ": a state folder was left";
    EXPECT_TRUE(env_->leftovers().empty()) << c.where() << ": a cgroup was left";
  }
  EXPECT_TRUE(daemon_->process().pid() > 0);
  EXPECT_NO_THROW(client_->version()) << "the daemon did not survive the table: " << daemon_log();
}

TEST_F(ARunscopedUnderHostileInput, RefusesANameThatWouldShareAnotherTasksCgroupAndKeepsThatTasksState) {
  auto first = R"({"alloc":"x-y","task":"z","config":{"command":"/bin/sleep","args":["300"]}})";
  ASSERT_EQ(client_->start(first), TaskId("x-y", "z"));
  ASSERT_EQ(state_folders(), 1u);
  std::string message;
  EXPECT_EQ(start(R"({"alloc":"x","task":"y-z","config":{"command":"/bin/true"}})", message), "Conflict");
  EXPECT_NE(message.find("would share the cgroup name \"x-y-z\" with task x-y/z"), std::string::npos) << message;
  EXPECT_EQ(state_folders(), 1u) << "the refused start removed the first task's state";
  EXPECT_EQ(client_->inspect(TaskId("x-y", "z"))["state"], "running");
  EXPECT_EQ(client_->list().size(), 1u);
}

}  // namespace
}  // namespace runscope
