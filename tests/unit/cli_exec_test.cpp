// The `runscope` binary's contract, without cgroups (--no-cgroups) or before anything is made:
// exit codes, 128+N for signals, graceful stop on SIGTERM, one-line errors for bad input.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/exec_checks.hpp"
#include "support/runscope_cli.hpp"

namespace runscope {
namespace {

using runscope::testing::ExecUnderTest;
using runscope::testing::RunscopeCli;

class RunscopeExec : public ::testing::Test {
 protected:
  RunscopeCli cli_;
};

TEST_F(RunscopeExec, ExitsWithTheCommandsExitCode) {
  auto r = cli_.run({"exec", "--no-cgroups", "--", "sh", "-c", "echo hello; exit 3"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(RunscopeExec, ExitsWith128PlusTheSignalThatKilledTheCommand) {
  EXPECT_EQ(cli_.run({"exec", "--no-cgroups", "--", "sh", "-c", "kill -KILL $$"}).code, 137);
}

TEST_F(RunscopeExec, PassesEnvironmentAndWorkingDirectory) {
  auto r = cli_.run({"exec", "--no-cgroups", "--env", "RS_A=1", "--env", "RS_A=2", "--chdir", "/", "--", "sh", "-c",
                     "echo $RS_A; pwd"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "2\n/\n");
}

TEST_F(RunscopeExec, TurnsSigtermIntoAGracefulStop) {
  auto proc = cli_.start({"exec", "--no-cgroups", "--kill-timeout", "10s", "--", "sh", "-c", "echo ready; sleep 30"});
  ASSERT_TRUE(cli_.wait_for_output("ready"));
  ASSERT_TRUE(proc.signal(SIGTERM));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGTERM);
}

TEST_F(RunscopeExec, KillsACommandIgnoringTheStopSignalAfterTheTimeout) {
  auto proc = cli_.start({"exec", "--no-cgroups", "--kill-timeout", "100ms", "--", "sh", "-c",
                          "trap '' INT TERM; echo ready; while :; do sleep 1; done"});
  ASSERT_TRUE(cli_.wait_for_output("ready"));
  ASSERT_TRUE(proc.signal(SIGINT));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGKILL);
}

TEST_F(RunscopeExec, NamesAMissingCommand) {
  auto r = cli_.run({"exec", "--no-cgroups", "--", "runscope-no-such-command"});
  EXPECT_EQ(r.code, 127);
  EXPECT_EQ(r.err, "runscope: cannot execute 'runscope-no-such-command': No such file or directory\n");
}

TEST_F(RunscopeExec, RejectsABadTaskNameWithOneLine) {
  auto r = cli_.run({"exec", "--task", "../etc", "--", "true"});
  EXPECT_EQ(r.code, 64);
  EXPECT_NE(r.err.find("../etc"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(RunscopeExec, RejectsBadValuesNamingTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string names;
  };
  for (const auto& c : std::vector<Case>{{{"--memory-max", "12Q"}, "--memory-max"},
                                         {{"--cpu-weight", "0"}, "--cpu-weight"},
                                         {{"--pids-max", "-3"}, "--pids-max"},
                                         {{"--cpuset", "3-1"}, "--cpuset"},
                                         {{"--kill-signal", "SIGNOPE"}, "SIGNOPE"},
                                         {{"--kill-timeout", "soon"}, "--kill-timeout"},
                                         {{"--env", "NOEQUALS"}, "--env"},
                                         {{"--manager", "docker"}, "--manager"},
                                         {{"--user", "runscope-no-such-user"}, "runscope-no-such-user"}}) {
    std::vector<std::string> args{"exec"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.insert(args.end(), {"--", "true"});
    auto r = cli_.run(args);
    EXPECT_EQ(r.code, 64) << c.names;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << r.err;
    EXPECT_EQ(r.err.rfind("runscope: ", 0), 0u) << r.err;
  }
}

TEST_F(RunscopeExec, RejectsABadConfigWithItsLocationAndExit78) {
  auto config = cli_.write_config("[task]\nkill_timeout = \"5s\"\nno_such_key = 1\n");
  auto r = cli_.run({"--config", config, "exec", "--no-cgroups", "--", "true"});
  EXPECT_EQ(r.code, 78);
  EXPECT_EQ(r.err.rfind("runscope: " + config + ":3:1: ", 0), 0u) << r.err;
}

TEST_F(RunscopeExec, RefusesADeniedUid) {
  auto config = cli_.write_config("[task]\ndenied_uids = [" + std::to_string(::geteuid()) + "]\n");
  auto r = cli_.run({"--config", config, "exec", "--no-cgroups", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(r.code, 126);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("denied_uids"), std::string::npos) << r.err;
}

TEST_F(RunscopeExec, RefusesLimitsWithoutCgroups) {
  auto r = cli_.run({"exec", "--no-cgroups", "--memory-max", "64M", "--", "true"});
  EXPECT_EQ(r.code, 69);
  EXPECT_NE(r.err.find("no_cgroups"), std::string::npos) << r.err;
}

TEST_F(RunscopeExec, NeedsACommand) {
  auto r = cli_.run({"exec", "--no-cgroups"});
  EXPECT_EQ(r.code, 64);
  EXPECT_NE(r.err.find("command"), std::string::npos) << r.err;
}

// Every class of signal (cli/exec_signals.hpp), with the process group standing in for the cgroup.
class RunscopeExecSignals : public RunscopeExec {
 protected:
  ExecUnderTest exec_{cli_, {}, {"--no-cgroups"}};
};

TEST_F(RunscopeExecSignals, IntTermHupAndQuitEachStopTheTaskGracefully) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) testing::check_stop_signal_stops_gracefully(exec_, sig);
}

TEST_F(RunscopeExecSignals, ASecondStopSignalInTheGracePeriodKillsAtOnce) {
  testing::check_second_stop_signal_kills_at_once(exec_);
}

TEST_F(RunscopeExecSignals, EveryOtherCatchableSignalIsForwardedToTheMainProcess) {
  testing::check_signals_are_forwarded(
      exec_, {SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM, SIGPWR, SIGURG, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO,
              SIGPIPE, SIGSYS, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGSTKFLT, SIGRTMIN, SIGRTMIN + 7,
              SIGRTMAX});
}

TEST_F(RunscopeExecSignals, JobControlSignalsAreDroppedInAnOrphanedProcessGroup) {
  for (int sig : {SIGTSTP, SIGTTIN, SIGTTOU}) testing::check_job_control_dropped_when_orphaned(exec_, sig);
}

TEST_F(RunscopeExecSignals, JobControlStopsTheTaskAndRunscopeAsAShellsJobAndSigcontResumesThem) {
  for (int sig : {SIGTSTP, SIGTTIN, SIGTTOU}) testing::check_job_control_stops_and_resumes(exec_, sig);
}

TEST_F(RunscopeExecSignals, ASigkillOfRunscopeLeavesAnOrphanThatOrphansKillEnds) {
  testing::check_sigkill_leaves_an_orphan_that_orphans_ends(exec_, "unit-orphan");
}

TEST_F(RunscopeExecSignals, ASignalItWasStartedWithIgnoredStaysIgnored) {
  // As under `nohup`: HUP ignored before runscope starts (sh's trap '', kept across exec).
  driver::SpawnSpec spec;
  spec.argv = {"sh", "-c", std::string("trap '' HUP; exec ") + RUNSCOPE_BINARY +
                               " exec --no-cgroups -- sh -c 'trap \"echo got-usr1\" USR1; echo ready; "
                               "while :; do sleep 0.05; done'"};
  spec.env = cli_.child_env();
  spec.stdout_path = cli_.out_path();
  spec.stderr_path = cli_.err_path();
  cli_.clear_output();
  driver::CloneSpawner spawner;
  auto proc = spawner.spawn(spec, nullptr);
  ASSERT_TRUE(cli_.wait_for_output("ready")) << cli_.err();
  ASSERT_TRUE(proc.signal(SIGHUP));
  ASSERT_TRUE(proc.signal(SIGUSR1));  // served after the HUP: so the HUP was dropped, not pending
  EXPECT_TRUE(cli_.wait_for_output("got-usr1")) << cli_.err();
  EXPECT_EQ(cli_.err().find("stopping task"), std::string::npos) << cli_.err();
  ASSERT_TRUE(proc.signal(SIGTERM));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGTERM) << cli_.err();
}

TEST_F(RunscopeExec, WritesTheVerdictToTheStatusFile) {
  const auto status = (cli_.dir() / "verdict.json").string();
  std::ofstream(status) << "stale";
  auto r = cli_.run({"exec", "--no-cgroups", "--alloc", "a1", "--status-file", status, "--", "sh", "-c", "exit 5"});
  ASSERT_EQ(r.code, 5) << r.err;
  auto j = nlohmann::json::parse(std::ifstream(status));
  EXPECT_EQ(j["alloc"], "a1");
  EXPECT_EQ(j["task"], "sh");
  EXPECT_EQ(j["state"], "exited");
  EXPECT_EQ(j["manager"], "none");
  EXPECT_EQ(j["exit_code"], 5);
  EXPECT_TRUE(j["signal"].is_null());
  EXPECT_EQ(j["oom_killed"], false);
  EXPECT_TRUE(j["started_at"].is_string());
  EXPECT_TRUE(j["finished_at"].is_string());
  // No cgroup, so nothing counted: present, and null.
  for (const char* key : {"memory_peak", "cpu_user_usec", "cpu_system_usec"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_null()) << key;
  }
}

TEST_F(RunscopeExec, ReportsAStopAsKilledInTheStatusFile) {
  const auto status = (cli_.dir() / "verdict.json").string();
  auto proc = cli_.start({"exec", "--no-cgroups", "--status-file", status, "--", "sh", "-c", "echo ready; sleep 30"});
  ASSERT_TRUE(cli_.wait_for_output("ready"));
  ASSERT_TRUE(proc.signal(SIGTERM));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGTERM);
  auto j = nlohmann::json::parse(std::ifstream(status));
  EXPECT_EQ(j["state"], "killed");
  EXPECT_EQ(j["signal"], SIGTERM);
  EXPECT_TRUE(j["exit_code"].is_null());
}

TEST_F(RunscopeExec, RefusesAStatusFileItCannotWriteBeforeRunningAnything) {
  auto r = cli_.run({"exec", "--no-cgroups", "--status-file", "/nonexistent-dir/verdict.json", "--", "sh", "-c",
                     "echo ran"});
  EXPECT_EQ(r.code, 64);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("--status-file"), std::string::npos) << r.err;
}

// One function turns flags into a spec for both commands: the same value, the same message.
TEST_F(RunscopeExec, AndRunRefuseABadValueWithTheSameMessage) {
  for (const auto& flag : std::vector<std::pair<std::string, std::string>>{{"--cpu-weight", "0"},
                                                                           {"--cpu-weight", "10001"},
                                                                           {"--pids-max", "-3"},
                                                                           {"--memory-max", "4K"},
                                                                           {"--kill-timeout", "soon"},
                                                                           {"--kill-signal", "SIGNOPE"},
                                                                           {"--env", "=x"},
                                                                           {"--task", ".."}}) {
    auto exec = cli_.run({"exec", flag.first, flag.second, "--", "/bin/true"});
    // run validates before it connects: no daemon is needed to see its answer.
    auto run = cli_.run({"--bus", "unix:path=/nonexistent", "run", flag.first, flag.second, "--", "/bin/true"});
    EXPECT_EQ(exec.code, 64) << flag.first << " " << exec.err;
    EXPECT_EQ(run.code, 64) << flag.first << " " << run.err;
    EXPECT_EQ(exec.err, run.err) << flag.first;
    EXPECT_EQ(exec.err.rfind("runscope: " + flag.first, 0), 0u) << exec.err;
  }
}

TEST_F(RunscopeExec, AnEnvValueReplacesTheInheritedOne) {
  auto r = cli_.run({"exec", "--no-cgroups", "--env", "PATH=/bin:/usr/bin", "--env", "HOME=/rs", "--", "sh", "-c",
                     "env | grep -c '^PATH='; echo $HOME"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n/rs\n");
}

TEST_F(RunscopeExec, TakesARelativeChdirAsRelativeToItsOwnDirectory) {
  auto r = cli_.run({"exec", "--no-cgroups", "--chdir", ".", "--", "pwd"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::filesystem::current_path().string() + "\n");
}

TEST(RunscopeFingerprint, PrintsSortedKeyValueLinesWithTheCgroupFacts) {
  RunscopeCli cli;
  auto r = cli.run({"fingerprint"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> keys;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    ASSERT_NE(eq, std::string::npos) << line;
    keys.push_back(line.substr(0, eq));
  }
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  for (const char* key : {"unique.cgroups.version", "unique.cgroups.mode", "cgroups.manager", "cgroups.v1.controllers",
                          "cgroups.v2.controllers", "cgroups.kill", "cpu.online"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  }
}

TEST(RunscopeFingerprint, PrintsJsonOnRequest) {
  RunscopeCli cli;
  auto r = cli.run({"fingerprint", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_NE(r.out.find("\"unique.cgroups.version\": \"v"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace runscope
