// A real runscoped under a hostile member's load (issue 11): the member (a uid of its own, in a
// child process of the test) holds eight stops of TERM-ignoring tasks with an hour of grace and
// floods the bus from one connection; root's ListTasks and StartTask are still answered, each
// within a generous deadline (no assertion on speed: bench/ measures the latency).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "common/file.hpp"
#include "support/bus_flood.hpp"
#include "support/daemon_process.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr uid_t kMember = 65534;  // nobody: dbus-daemon looks up a caller's groups, so it must exist
constexpr int kSlowStops = 8;
constexpr auto kGenerous = 10s;     // what root may wait for one answer under this load

class ARunscopedUnderHostileLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    env_.emplace(testing::make_v1_env("load"));
    bus_ = std::make_unique<testing::PrivateBus>();
    ::chmod(bus_->dir().c_str(), 0711);  // the member's connection reaches the socket
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    auto config = tmp_.path() / "runscope.toml";
    std::ofstream(config) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                          << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << log();
  }
  void TearDown() override {
    if (member_ > 0) {
      ::kill(member_, SIGKILL);
      ::waitpid(member_, nullptr, 0);
    }
    if (daemon_) {
      try {
        api::ManagerClient root(bus_->address());
        for (const auto& t : root.list()) root.destroy(TaskId(t.alloc, t.task));  // no grace: gone now
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cleaning up: " << e.what();
      }
      daemon_.reset();
    }
    bus_.reset();
    if (env_) env_->remove_parent();
  }
  std::string log() { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }

  std::optional<testing::V1Env> env_;
  testing::TempDir tmp_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  pid_t member_ = -1;
};

TEST_F(ARunscopedUnderHostileLoad, AnswersRootWhileAMemberHoldsEightHourLongStopsAndFloodsTheBus) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd from_member(fds[0]), to_parent(fds[1]);
  member_ = ::fork();  // this process has no other thread: the child may run C++ freely
  ASSERT_GE(member_, 0);
  if (member_ == 0) testing::run_hostile_member(bus_->address(), kMember, to_parent.get(), kSlowStops);
  to_parent.reset();

  std::string said;
  bool ready = false;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        testing::read_member_report(from_member.get(), said, ready);
        return ready;
      },
      60s))
      << "the member did not get going: " << said << log();
  std::this_thread::sleep_for(500ms);  // the flood is under way

  api::ManagerClient root(bus_->address());
  auto timed = [&](const char* what, const std::function<void()>& call) {
    auto t0 = Steady::now();
    ASSERT_NO_THROW(call()) << what;
    EXPECT_LT(Steady::now() - t0, kGenerous) << what << " under load";
  };
  for (int i = 0; i < 20; ++i) {
    timed("ListTasks", [&] { EXPECT_GE(root.list().size(), static_cast<std::size_t>(kSlowStops)); });
  }
  for (int i = 0; i < 5; ++i) {
    std::string spec = nlohmann::json{{"alloc", "root"}, {"task", "t" + std::to_string(i)},
                                      {"config", {{"command", "/bin/true"}}}}.dump();
    timed("StartTask", [&] { root.start(spec); });
  }
  // The member's stops are still pending (an hour of grace), and its flood kept going.
  for (const auto& t : root.list()) {
    if (t.alloc == "hostile") {
      EXPECT_EQ(t.state, "running") << t.task;
    }
  }
  long before = testing::read_member_report(from_member.get(), said, ready);
  std::this_thread::sleep_for(300ms);
  long after = testing::read_member_report(from_member.get(), said, ready);
  EXPECT_GT(after, before) << "the member's flood was not being answered";
  EXPECT_GT(after, 100) << "the flood barely flooded";
  EXPECT_EQ(::waitpid(member_, nullptr, WNOHANG), 0) << "the member died: " << said;
}

}  // namespace
}  // namespace runscope
