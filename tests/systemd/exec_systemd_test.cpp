// `runscope exec` against a real systemd (the contained one, cgroup v2): the scope is made by
// systemd, the command's first act sees it, and nothing is left once the command ends.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/exec_checks.hpp"
#include "support/held_child.hpp"
#include "support/runscope_cli.hpp"
#include "systemd/contained.hpp"

namespace runscope {
namespace {

using runscope::systemd_testing::eventually;
using runscope::systemd_testing::unique_name;
using runscope::testing::RunscopeCli;

// exec's slice, beside runscoped's runscope.slice tasks (cli/exec.cpp).
constexpr const char* kSliceDir = "/sys/fs/cgroup/runscope.slice/runscope-exec.slice";

class RunscopeExecWithSystemd : public ::testing::Test {
 protected:
  void SetUp() override { RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD(); }
  bool scope_gone(const std::string& alloc, const std::string& task) {
    return eventually([&] { return !std::filesystem::exists(std::string(kSliceDir) + "/" + alloc + "-" + task + ".scope"); });
  }
  // No scope of ours is left in exec's slice.
  bool no_scopes_left() {
    return eventually([&] {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(kSliceDir, ec)) {
        if (e.is_directory()) return false;
      }
      return true;
    });
  }
  RunscopeCli cli_;
  testing::ExecUnderTest exec_{cli_, {}, {}};
};

TEST_F(RunscopeExecWithSystemd, AutoPicksSystemdOnThisUnifiedHost) {
  auto r = cli_.run({"fingerprint"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("cgroups.manager=systemd\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unique.cgroups.mode=unified\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unique.cgroups.version=v2\n"), std::string::npos) << r.out;
  // The version of the systemd under test (252 here, 257 in the Debian 13 stack), as systemctl says.
  const auto systemctl = systemd_testing::run_command("systemctl --version");
  const auto major = systemctl.substr(8, systemctl.find(' ', 8) - 8);  // "systemd 257 (257.13-...)"
  EXPECT_NE(r.out.find("systemd.version=" + major + "."), std::string::npos) << r.out << systemctl;
}

// The primer (cgroup/migration_primer.hpp) writes to exec's own cgroup as seen from its cgroup
// namespace (the contained systemd's): the kernel takes the write, and exec's process is where
// it was, in every thread, when its task runs.
TEST_F(RunscopeExecWithSystemd, PrimesTheMigrationLockFromWhereItIsAndMovesNothing) {
  const auto alloc = unique_name("primer");
  const auto before = systemd_testing::unified_line(systemd_testing::run_command("cat /proc/self/cgroup"));
  auto r = cli_.run({"--log-level", "debug", "exec", "--manager", "systemd", "--alloc", alloc, "--task", "t", "--",
                     "sh", "-c", "cat /proc/$PPID/task/*/cgroup"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("primed the cgroup migration lock"), std::string::npos) << r.err;
  // Every thread of exec (its parent) still in the cgroup exec was started in, its test's.
  std::istringstream lines(r.out);
  int threads = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("0::")) continue;
    ++threads;
    EXPECT_EQ(line.substr(3), before) << r.out;
  }
  EXPECT_GE(threads, 1) << r.out;
  EXPECT_TRUE(scope_gone(alloc, "t"));
}

TEST_F(RunscopeExecWithSystemd, TheCommandsFirstActSeesItsScopeAndTheScopeIsGoneAfterwards) {
  const auto alloc = unique_name("exec");
  auto r = cli_.run({"exec", "--manager", "systemd", "--alloc", alloc, "--task", "first", "--", "sh", "-c",
                     "cat /proc/self/cgroup; exit 3"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(systemd_testing::unified_line(r.out), "/runscope.slice/runscope-exec.slice/" + alloc + "-first.scope")
      << r.out;
  EXPECT_TRUE(scope_gone(alloc, "first"));
}

// What exec guarantees at its return (docs/cli.md): no process of the task runs, its scope is
// empty, and the scope's stop has been sent to systemd, which removes it a moment later. The same
// name can run again at once, while systemd may still be removing the last scope.
TEST_F(RunscopeExecWithSystemd, NothingOfTheTaskRunsAtItsReturnAndItsNameCanRunAgainAtOnce) {
  const auto alloc = unique_name("again");
  const auto scope = std::string(kSliceDir) + "/" + alloc + "-t.scope";
  for (int i = 0; i < 5; ++i) {
    auto r = cli_.run({"exec", "--alloc", alloc, "--task", "t", "--", "sh", "-c", "sleep 300 & echo $!"});
    ASSERT_EQ(r.code, 0) << "run " << i << ": " << r.err;
    const pid_t left = std::stoi(r.out);
    EXPECT_FALSE(testing::process_alive(left)) << "run " << i << ": the task's background sleep outlived exec";
    std::ifstream events(scope + "/cgroup.events");
    std::string populated;
    if (events >> populated >> populated) {  // not removed yet
      EXPECT_EQ(populated, "0") << "run " << i;
    }
  }
  EXPECT_TRUE(scope_gone(alloc, "t"));
}

TEST_F(RunscopeExecWithSystemd, SigtermStopsATaskThatIgnoresItAndKillsItsSetsidDaemon) {
  const auto alloc = unique_name("stop");
  const auto pids = (cli_.dir() / "task.pids").string();
  auto proc = cli_.start({"exec", "--alloc", alloc, "--task", "stubborn", "--kill-timeout", "200ms", "--", "sh", "-c",
                          "trap '' TERM; setsid -f sh -c 'echo $$ >> " + pids + "; exec sleep 300'; "
                          "while [ ! -s " + pids + " ]; do :; done; echo ready; while :; do sleep 1; done"});
  ASSERT_TRUE(cli_.wait_for_output("ready")) << cli_.err();
  ASSERT_TRUE(proc.signal(SIGTERM));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGKILL) << cli_.err();
  std::ifstream in(pids);
  pid_t daemon = 0;
  ASSERT_TRUE(in >> daemon);
  EXPECT_TRUE(eventually([&] { return !testing::process_alive(daemon); }));
  EXPECT_TRUE(scope_gone(alloc, "stubborn"));
}

// Every class of signal on the systemd path (cli/exec_signals.hpp).
TEST_F(RunscopeExecWithSystemd, StopSignalsStopTheTaskGracefullyAndASecondOneKillsAtOnce) {
  testing::check_stop_signal_stops_gracefully(exec_, SIGHUP);
  testing::check_stop_signal_stops_gracefully(exec_, SIGINT);
  testing::check_second_stop_signal_kills_at_once(exec_);
  EXPECT_TRUE(no_scopes_left());
}

TEST_F(RunscopeExecWithSystemd, OtherSignalsAreForwardedToTheMainProcess) {
  testing::check_signals_are_forwarded(exec_, {SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM, SIGRTMIN + 1});
  EXPECT_TRUE(no_scopes_left());
}

TEST_F(RunscopeExecWithSystemd, JobControlActsAsOnAShellsForegroundJob) {
  testing::check_job_control_dropped_when_orphaned(exec_, SIGTTOU);
  testing::check_job_control_stops_and_resumes(exec_, SIGTSTP);
  EXPECT_TRUE(no_scopes_left());
}

TEST_F(RunscopeExecWithSystemd, ASigkillOfRunscopeLeavesAnOrphanThatOrphansKillEndsWithItsScope) {
  const auto alloc = unique_name("orphan");
  testing::check_sigkill_leaves_an_orphan_that_orphans_ends(exec_, alloc);
  EXPECT_TRUE(scope_gone(alloc, "orphan"));
  EXPECT_TRUE(no_scopes_left());
}

TEST_F(RunscopeExecWithSystemd, WritesTheSameVerdictAsInspect) {
  const auto status = (cli_.dir() / "verdict.json").string();
  const auto alloc = unique_name("verdict");
  auto r = cli_.run({"exec", "--alloc", alloc, "--status-file", status, "--", "sh", "-c", "exit 6"});
  ASSERT_EQ(r.code, 6) << r.err;
  auto j = nlohmann::json::parse(std::ifstream(status));
  EXPECT_EQ(j["state"], "exited");
  EXPECT_EQ(j["exit_code"], 6);
  EXPECT_EQ(j["manager"], "systemd");
  EXPECT_EQ(j["unit"], "runscope-exec.slice/" + alloc + "-sh.scope");
  EXPECT_TRUE(j["cpu_user_usec"].is_number()) << j.dump();  // cpu.stat: counted without controllers
  EXPECT_TRUE(j.contains("memory_peak"));                    // null: no memory controller here
  EXPECT_TRUE(scope_gone(alloc, "sh"));
}

}  // namespace
}  // namespace runscope
