// Entering a running task on this host's real v1 cgroupfs with the real runscope-shim: the
// entered command is in the task's cgroup in every hierarchy (its /proc/PID/cgroup is the task's
// main process's, line for line), runs as the task's user, is counted in the task's stats and
// dies with the task; a member enters its own task, another member is told there is none, root
// enters any and may name the user. Then the CLI end to end: `runscope enter` through a real
// runscoped on a private bus, with and without -t.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <future>

#include "common/error.hpp"
#include "common/file.hpp"
#include "support/daemon_process.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;

class EnteringATaskOnThisHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    testing::become_subreaper();
    env_ = testing::make_v1_env("enter");
    backend_ = env_.make_backend(clock_);
    launcher_ = std::make_unique<ExecShimLauncher>(RUNSCOPE_SHIM_BINARY);
    ManagerOptions options;
    options.state_dir = state_.path() / "state";
    manager_ = std::make_unique<TaskManager>(*backend_, nullptr, *launcher_, clock_, options, [](const std::string&) {});
  }
  void TearDown() override {
    if (!backend_) return;
    manager_->shutdown(false);
    manager_.reset();
    testing::reap_zombies();
    EXPECT_THAT(env_.leftovers(), ::testing::IsEmpty());
    env_.remove_parent();
  }

  struct Run {
    std::future<int> status;
    UniqueFd out;
  };
  Run enter(const TaskId& id, driver::EnterSpec spec, const Caller& caller) {
    Pipe out = make_pipe(O_CLOEXEC);
    auto fds = std::make_shared<std::array<UniqueFd, 3>>();
    (*fds)[0].reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    (*fds)[1].reset(::dup(out.write.get()));
    (*fds)[2] = std::move(out.write);
    auto promise = std::make_shared<std::promise<int>>();
    Run run{promise->get_future(), std::move(out.read)};
    manager_->enter(id, EnterRequest{std::move(spec), fds}, caller, [promise](Outcome<int> o) {
      try {
        promise->set_value(o.get());
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    });
    return run;
  }
  // Waits for the answer and what the command wrote; "KIND: message" when it failed.
  static std::pair<std::string, std::string> finish(Run& run) {
    if (run.status.wait_for(60s) != std::future_status::ready) return {"timeout", ""};
    try {
      int code = run.status.get();
      std::string text;
      char buf[4096];
      ssize_t n;
      while ((n = ::read(run.out.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
      return {std::to_string(code), text};
    } catch (const Error& e) {
      return {std::string(to_string(e.kind())) + ": " + e.what(), ""};
    }
  }
  static driver::EnterSpec sh(const std::string& script) { return {"sh", {"-c", script}, {}, false, {}, {}}; }

  SteadyClock clock_;
  testing::TempDir state_;
  testing::V1Env env_;
  std::unique_ptr<cgroup::Backend> backend_;
  std::unique_ptr<ShimLauncher> launcher_;
  std::unique_ptr<TaskManager> manager_;
};

TEST_F(EnteringATaskOnThisHost, PutsTheCommandInEveryCgroupOfTheTaskAsItsUser) {
  Caller member{kNobody, kNobody};
  auto id = manager_->start(testing::shell_task("en", "web", "exec sleep 300"), member);
  const pid_t main_pid = manager_->inspect(id, member).pid;
  auto run = enter(id, sh("cat /proc/self/cgroup; id -u; exit 7"), member);
  auto [code, out] = finish(run);
  EXPECT_EQ(code, "7");
  const std::string theirs = read_file("/proc/" + std::to_string(main_pid) + "/cgroup");
  EXPECT_EQ(out, theirs + std::to_string(kNobody) + "\n");
  EXPECT_NE(theirs.find(id.cgroup_name()), std::string::npos) << theirs;  // not where we are
}

TEST_F(EnteringATaskOnThisHost, CountsTheCommandInTheTasksStatsAndKillsItWithTheTask) {
  auto id = manager_->start(testing::shell_task("en", "kill", "exec sleep 300"), Caller{});
  ASSERT_EQ(manager_->stats(id, Caller{}).pids_current, 1u);
  auto run = enter(id, driver::EnterSpec{"sleep", {"300"}, {}, false, {}, {}}, Caller{});
  Deadline deadline(clock_, 30s);
  while (manager_->stats(id, Caller{}).pids_current != 2u && !deadline.expired()) clock_.sleep_for(5ms);
  EXPECT_EQ(manager_->stats(id, Caller{}).pids_current, 2u);
  manager_->destroy(id, Caller{});  // the cgroup kill takes the entered command too
  EXPECT_EQ(finish(run).first, std::to_string(128 + SIGKILL));
}

TEST_F(EnteringATaskOnThisHost, LetsTheOwnerAndRootInAndTellsAnotherMemberThereIsNone) {
  Caller owner{kNobody, kNobody}, other{kNobody - 1, kNobody - 1};
  auto id = manager_->start(testing::shell_task("en", "mine", "exec sleep 300"), owner);
  auto stranger = enter(id, sh("exit 0"), other);
  EXPECT_THAT(finish(stranger).first, ::testing::StartsWith("not found: no task en/mine"));
  auto as_root = sh("id -u");
  as_root.user = "root";
  auto member_as_root = enter(id, as_root, owner);
  EXPECT_THAT(finish(member_as_root).first, ::testing::StartsWith("permission denied: user: a caller that is not root"));
  auto mine = enter(id, sh("id -u"), owner);
  EXPECT_EQ(finish(mine), std::make_pair(std::string("0"), std::to_string(kNobody) + "\n"));
  auto root = enter(id, as_root, Caller{});
  EXPECT_EQ(finish(root), std::make_pair(std::string("0"), std::string("0\n")));
}

// The CLI through a real runscoped on a private bus.
class RunscopeEnterOnTheBus : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    env_.emplace(testing::make_v1_env("enter-cli"));
    bus_ = std::make_unique<testing::PrivateBus>();
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    auto config = tmp_.path() / "runscope.toml";
    std::ofstream(config) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                          << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << read_file_if_exists(tmp_.path() / "daemon.log").value_or("");
  }
  void TearDown() override {
    if (!env_) return;
    if (daemon_) {
      run({"kill", "cli", "web"});
      daemon_.reset();
    }
    bus_.reset();
    env_->remove_parent();
  }
  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }

  std::optional<testing::V1Env> env_;
  testing::TempDir tmp_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::RunscopeCli cli_;
};

TEST_F(RunscopeEnterOnTheBus, RunsTheCommandInTheTaskAndExitsWithItsCode) {
  ASSERT_EQ(run({"run", "--alloc", "cli", "--task", "web", "--env", "IN_TASK=yes", "--", "/bin/sleep", "300"}).code, 0);
  auto plain = run({"enter", "cli", "web", "--env", "MORE=1", "--", "sh", "-c", "echo $IN_TASK $MORE; exit 4"});
  EXPECT_EQ(plain.code, 4) << plain.err;
  EXPECT_EQ(plain.out, "yes 1\n");
  auto tty = run({"enter", "-t", "cli", "web", "--", "sh", "-c", "tty; exit 5"});
  EXPECT_EQ(tty.code, 5) << tty.err;
  EXPECT_THAT(tty.out, ::testing::StartsWith("/dev/pts/"));  // its own terminal, made by the CLI
  auto missing = run({"enter", "cli", "nope", "--", "true"});
  EXPECT_NE(missing.code, 0);
  EXPECT_THAT(missing.err, ::testing::HasSubstr("no task cli/nope"));
}

}  // namespace
}  // namespace runscope::daemon
