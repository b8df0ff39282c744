// `runscope exec` on this host's real cgroupfs, as root, through the built binary: on v1 (the
// hybrid/legacy hierarchies) and on v2 (the cgroup2 mount; on a hybrid host through the hidden
// --cgroupfs-v2 switch). Every test uses a RELATIVE parent runscope-test-<pid>-exec-<version>, so
// memory cgroups nest beneath our own; teardown asserts no cgroup and no process is left.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cgroup/host.hpp"
#include "cgroup/v1_backend.hpp"
#include "common/sanitizers.hpp"
#include <nlohmann/json.hpp>

#include "support/exec_checks.hpp"
#include "support/held_child.hpp"
#include "support/runscope_cli.hpp"
#include "driver/manager_choice.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using cgroup::Version;
using runscope::testing::process_alive;
using runscope::testing::RunscopeCli;

class RunscopeExecOnHost : public ::testing::TestWithParam<Version> {
 protected:
  void SetUp() override {
    if (!testing::is_root()) GTEST_SKIP() << "needs root to write cgroupfs";
    layout_ = driver::detect_layout();
    own_ = cgroup::own_cgroups();
    v2_ = GetParam() == Version::v2;
    if (!v2_ && layout_.version() != Version::v1) GTEST_SKIP() << "this host has no cgroup v1 hierarchies";
    if (v2_ && layout_.unified_mount.empty()) GTEST_SKIP() << "this host has no cgroup2 mount";
    parent_ = "runscope-test-" + std::to_string(::getpid()) + "-exec-" + (v2_ ? "v2" : "v1");
    config_ = cli_.write_config("[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" + parent_ + "\"\n");
    for (const auto& dir : parent_dirs()) ASSERT_FALSE(fs::exists(dir)) << dir << " exists before the test";
  }

  void TearDown() override {
    if (parent_.empty()) return;
    for (pid_t pid : recorded_pids()) {
      EXPECT_FALSE(process_alive(pid)) << "process " << pid << " survived its task";
      if (process_alive(pid)) ::kill(pid, SIGKILL);
    }
    for (const auto& dir : parent_dirs()) {
      if (!fs::exists(dir)) continue;
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_directory()) ADD_FAILURE() << "cgroup left behind: " << entry.path();
      }
      remove_tree(dir);
    }
  }

  // exec's parent: beside the configured one, which is runscoped's (see exec.cpp).
  std::string exec_parent() const { return parent_ + "-exec"; }

  // The folders runscope makes the parent in: one per v1 controller it uses, or the v2 one.
  std::vector<fs::path> parent_dirs() const {
    auto beneath = [&](const fs::path& mount, const std::string& key) {
      auto it = own_.find(key);
      return mount / (it != own_.end() ? fs::path(it->second).relative_path() : fs::path()) / exec_parent();
    };
    if (v2_) return {beneath(layout_.unified_mount, cgroup::kUnifiedKey)};
    std::vector<fs::path> dirs;
    for (const char* controller : cgroup::kV1TaskControllers) {
      auto it = layout_.v1_mounts.find(controller);
      if (it != layout_.v1_mounts.end()) dirs.push_back(beneath(it->second, controller));
    }
    return dirs;
  }

  // Depth-first rmdir; whatever is still inside is SIGKILLed first (a failed test must not leak).
  static void remove_tree(const fs::path& dir) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_directory()) remove_tree(entry.path());
    }
    std::ifstream procs(dir / "cgroup.procs");
    for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
    testing::wait_until([&] { return ::rmdir(dir.c_str()) == 0 || errno == ENOENT; }, std::chrono::seconds(10));
  }

  // Pids the tasks wrote to <tmp>/*.pids, one a line.
  std::vector<pid_t> recorded_pids() const {
    std::vector<pid_t> pids;
    for (const auto& entry : fs::directory_iterator(cli_.dir())) {
      if (entry.path().extension() != ".pids") continue;
      std::ifstream in(entry.path());
      for (pid_t pid; in >> pid;) pids.push_back(pid);
    }
    return pids;
  }

  std::vector<std::string> exec_args(std::vector<std::string> args) const {
    std::vector<std::string> all{"--config", config_, "exec"};
    if (v2_ && layout_.mode != cgroup::Mode::unified) all.push_back("--cgroupfs-v2");
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }
  testing::CliResult exec(std::vector<std::string> args) { return cli_.run(exec_args(std::move(args))); }
  testing::ExecUnderTest under_test() {
    std::vector<std::string> exec;
    if (v2_ && layout_.mode != cgroup::Mode::unified) exec.push_back("--cgroupfs-v2");
    return {cli_, {"--config", config_}, exec};
  }
  std::string pids_file(const std::string& name) const { return (cli_.dir() / (name + ".pids")).string(); }
  bool no_task_cgroups() const {
    for (const auto& dir : parent_dirs()) {
      if (!fs::exists(dir)) continue;
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_directory()) return false;
      }
    }
    return true;
  }

  cgroup::HostLayout layout_;
  cgroup::CgroupPaths own_;
  bool v2_ = false;
  std::string parent_, config_;
  RunscopeCli cli_;
};

TEST_P(RunscopeExecOnHost, TheCommandsFirstActSeesItsOwnCgroupInEveryController) {
  auto r = exec({"--alloc", "a1", "--task", "first", "--", "cat", "/proc/self/cgroup"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string suffix = "/" + exec_parent() + "/a1-first";
  std::map<std::string, std::string> seen;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    std::istringstream controllers(line.substr(first + 1, second - first - 1));
    for (std::string c; std::getline(controllers, c, ',');) seen[c] = line.substr(second + 1);
    if (first + 1 == second) seen[""] = line.substr(second + 1);
  }
  if (v2_) {
    EXPECT_TRUE(seen[""].ends_with(suffix)) << r.out;
  } else {
    for (const char* c : cgroup::kV1TaskControllers) {
      if (!layout_.v1_mounts.count(c)) continue;
      // No --cpuset: no cpuset cgroup of its own (it keeps runscope's, with the same CPUs).
      if (std::string(c) == "cpuset") {
        EXPECT_FALSE(seen[c].ends_with(suffix)) << r.out;
      } else {
        EXPECT_TRUE(seen[c].ends_with(suffix)) << c << " in\n" << r.out;
      }
    }
  }
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, CpusetOneConfinesTheCommandAndItsChildren) {
  auto r = exec({"--cpuset", "1", "--", "sh", "-c",
                 "grep Cpus_allowed_list /proc/self/status; sh -c 'grep Cpus_allowed_list /proc/self/status'"});
  if (v2_ && layout_.mode != cgroup::Mode::unified) {
    // This hybrid host's cgroup2 has no cpuset controller: a clear error naming it, nothing made.
    EXPECT_EQ(r.code, 69) << r.err;
    EXPECT_NE(r.err.find("cpuset"), std::string::npos) << r.err;
  } else {
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "Cpus_allowed_list:\t1\nCpus_allowed_list:\t1\n");
  }
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, KillsABoundedForkStormStillForkingWhenTheCommandEnds) {
  // Four forkers of 150 sleepers each; the command ends once 200 exist, while they still fork.
  const std::string pids = pids_file("storm");
  const std::string script =
      ": > " + pids + "; for f in 1 2 3 4; do (echo $(sh -c 'echo $PPID') >> " + pids + "; i=0; while [ $i -lt 150 ]; do sleep 300 & "
      "echo $! >> " + pids + "; i=$((i+1)); done; wait) & done; "
      "while [ $(wc -l < " + pids + ") -lt 200 ]; do :; done; exit 5";
  auto r = exec({"--kill-timeout", "1s", "--", "sh", "-c", script});
  EXPECT_EQ(r.code, 5) << r.err;
  EXPECT_GE(recorded_pids().size(), 200u);
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, KillsADoubleForkedSetsidDaemonWhenTheCommandEnds) {
  const std::string pids = pids_file("daemon");
  auto r = exec({"--", "sh", "-c",
                 "setsid -f sh -c 'echo $$ >> " + pids + "; exec sleep 300'; "
                 "while [ ! -s " + pids + " ]; do :; done; exit 0"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(recorded_pids().size(), 1u);
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, SigtermStopsATaskThatIgnoresItWithNoSurvivors) {
  const std::string pids = pids_file("stubborn");
  auto proc = cli_.start(exec_args({"--kill-timeout", "200ms", "--", "sh", "-c",
                                    "trap '' TERM; sleep 300 & echo $! >> " + pids + "; echo $$ >> " + pids +
                                        "; echo ready; while :; do sleep 1; done"}));
  ASSERT_TRUE(cli_.wait_for_output("ready")) << cli_.err();
  ASSERT_TRUE(proc.signal(SIGTERM));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGKILL) << cli_.err();
  EXPECT_EQ(recorded_pids().size(), 2u);
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, ReturnsExitCodesAndSignals) {
  EXPECT_EQ(exec({"--", "sh", "-c", "exit 42"}).code, 42);
  EXPECT_EQ(exec({"--", "sh", "-c", "kill -SEGV $$"}).code, 128 + SIGSEGV);
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, BadInputGivesAClearErrorAndLeavesNothing) {
  auto bad_name = exec({"--task", "a/b", "--", "true"});
  EXPECT_EQ(bad_name.code, 64);
  EXPECT_NE(bad_name.err.find("a/b"), std::string::npos) << bad_name.err;

  auto missing = exec({"--", "runscope-no-such-binary"});
  EXPECT_EQ(missing.code, 127);
  EXPECT_EQ(missing.err, "runscope: cannot execute 'runscope-no-such-binary': No such file or directory\n");

  auto denied_config = cli_.write_config("[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" + parent_ +
                                         "\"\n[task]\ndenied_uids = [0]\n");
  auto denied = cli_.run({"--config", denied_config, "exec", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(denied.code, 126);
  EXPECT_EQ(denied.out, "");
  EXPECT_NE(denied.err.find("uid 0"), std::string::npos) << denied.err;

  auto bad_config = cli_.write_config("[cgroups]\nmanager = \"nope\"\n");
  auto config = cli_.run({"--config", bad_config, "exec", "--", "true"});
  EXPECT_EQ(config.code, 78);
  EXPECT_NE(config.err.find(bad_config + ":2:"), std::string::npos) << config.err;
  EXPECT_TRUE(no_task_cgroups());
}

// Every class of signal on this path (cli/exec_signals.hpp); teardown checks nothing is left.
TEST_P(RunscopeExecOnHost, StopSignalsStopTheTaskGracefullyAndASecondOneKillsAtOnce) {
  testing::check_stop_signal_stops_gracefully(under_test(), SIGHUP);
  testing::check_stop_signal_stops_gracefully(under_test(), SIGQUIT);
  testing::check_second_stop_signal_kills_at_once(under_test());
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, OtherSignalsAreForwardedToTheMainProcess) {
  testing::check_signals_are_forwarded(under_test(), {SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM, SIGRTMIN + 1});
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, JobControlActsAsOnAShellsForegroundJob) {
  testing::check_job_control_dropped_when_orphaned(under_test(), SIGTSTP);
  testing::check_job_control_stops_and_resumes(under_test(), SIGTSTP);
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, ASigkillOfRunscopeLeavesAnOrphanThatOrphansKillEndsWithItsCgroup) {
  testing::check_sigkill_leaves_an_orphan_that_orphans_ends(under_test(), "host-" + std::to_string(::getpid()));
  EXPECT_TRUE(no_task_cgroups());
}

TEST_P(RunscopeExecOnHost, ReportsAnOomKillAsSuchWithTheSameVerdictAsInspect) {
  const auto status = (cli_.dir() / "verdict.json").string();
  auto r = exec({"--memory-max", "32M", "--status-file", status, "--", "sh", "-c", "exec tail /dev/zero"});
  if (v2_ && layout_.mode != cgroup::Mode::unified) {
    // This hybrid host's cgroup2 has no memory controller: the limit is refused, naming it.
    EXPECT_EQ(r.code, 69) << r.err;
    EXPECT_NE(r.err.find("memory"), std::string::npos) << r.err;
    EXPECT_TRUE(no_task_cgroups());
    return;
  }
  EXPECT_EQ(r.code, 128 + SIGKILL) << r.err;
  EXPECT_NE(r.err.find("killed by the kernel's OOM killer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--memory-max 32M"), std::string::npos) << r.err;
  auto j = nlohmann::json::parse(std::ifstream(status));
  EXPECT_EQ(j["state"], "oom_killed");
  EXPECT_EQ(j["oom_killed"], true);
  EXPECT_EQ(j["signal"], SIGKILL);
  EXPECT_TRUE(j["exit_code"].is_null());
  ASSERT_TRUE(j["memory_peak"].is_number()) << j.dump();
  EXPECT_GE(j["memory_peak"].get<std::uint64_t>(), 30u << 20);
  EXPECT_LE(j["memory_peak"].get<std::uint64_t>(), 32u << 20);
  EXPECT_TRUE(j["cpu_user_usec"].is_number());
  EXPECT_TRUE(j["cpu_system_usec"].is_number());
  EXPECT_EQ(j["manager"], "cgroupfs");
  EXPECT_TRUE(no_task_cgroups());
}

// A limit too small for the task's own exec (1.5 MB of environment against 1M: the exec copies it
// into the new program's memory, charged to the task's cgroup, while the child is still in its
// vfork in runscope's memory). The OOM killer never picks a task in a vfork, so nothing is killed:
// the charge fails, execve answers E2BIG, and exec names the limit and leaves nothing. A child
// that only shared runscope's memory (CLONE_VM without CLONE_VFORK, tried once) was picked, and
// the killer took exec down with it, its cgroups and registry entry left (docs/driver.md).
TEST_P(RunscopeExecOnHost, NamesTheMemoryLimitAnExecDoesNotFitInAndLeavesNothing) {
  const std::string value(100000, 'x');
  std::vector<std::string> args{"--memory-max", "1M"};
  for (int i = 0; i < 10; ++i) args.insert(args.end(), {"--env", "BIG" + std::to_string(i) + "=" + value});
  args.insert(args.end(), {"--", "/bin/true"});
  // --env takes 1 MiB at most: the rest comes with exec's own environment, which the task inherits.
  for (int i = 10; i < 15; ++i) ::setenv(("BIG" + std::to_string(i)).c_str(), value.c_str(), 1);
  auto r = exec(args);
  for (int i = 10; i < 15; ++i) ::unsetenv(("BIG" + std::to_string(i)).c_str());
  if (v2_ && layout_.mode != cgroup::Mode::unified) {
    // This hybrid host's cgroup2 has no memory controller: the limit is refused, naming it.
    EXPECT_EQ(r.code, 69) << r.err.substr(0, 500);
    EXPECT_NE(r.err.find("memory"), std::string::npos) << r.err.substr(0, 500);
    EXPECT_TRUE(no_task_cgroups());
    return;
  }
#if RUNSCOPE_SANITIZED
  // Sanitizer builds (this binary's and runscope's) make the child a copy (spawn.cpp): the OOM
  // killer may pick it, and exec reports that as any OOM kill.
  EXPECT_EQ(r.code, 128 + SIGKILL) << r.err.substr(0, 500);
  EXPECT_NE(r.err.find("killed by the kernel's OOM killer"), std::string::npos) << r.err.substr(0, 500);
#else
  EXPECT_EQ(r.code, 125) << r.err.substr(0, 500);
  EXPECT_NE(r.err.find("cannot execute '/bin/true': Argument list too long: the program's arguments and environment "
                       "do not fit in the task's memory limit (1M)"),
            std::string::npos)
      << r.err.substr(0, 500);
#endif
  EXPECT_TRUE(no_task_cgroups());
  EXPECT_TRUE(!fs::exists(cli_.registry()) || fs::is_empty(cli_.registry())) << "a registry entry was left";
}

TEST_P(RunscopeExecOnHost, AKillMinusNineOfTheTaskIsNotAnOomKill) {
  const auto status = (cli_.dir() / "verdict.json").string();
  std::vector<std::string> limit;
  if (!v2_) limit = {"--memory-max", "64M"};
  limit.insert(limit.end(), {"--status-file", status, "--", "sh", "-c", "kill -KILL $$"});
  auto r = exec(limit);
  EXPECT_EQ(r.code, 128 + SIGKILL) << r.err;
  EXPECT_EQ(r.err.find("OOM"), std::string::npos) << r.err;
  auto j = nlohmann::json::parse(std::ifstream(status));
  EXPECT_EQ(j["state"], "exited");
  EXPECT_EQ(j["oom_killed"], false);
  EXPECT_TRUE(j["cpu_user_usec"].is_number());
  EXPECT_TRUE(no_task_cgroups());
}

INSTANTIATE_TEST_SUITE_P(OnThisHost, RunscopeExecOnHost, ::testing::Values(Version::v1, Version::v2),
                         [](const auto& info) { return std::string(cgroup::to_string(info.param)); });

}  // namespace
}  // namespace runscope
