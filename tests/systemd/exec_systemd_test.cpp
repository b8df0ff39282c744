// `runscope exec` against a real systemd (the contained one, cgroup v2): the scope is made by
// systemd, the command's first act sees it, and nothing is left once the command ends.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "support/held_child.hpp"
#include "support/runscope_cli.hpp"
#include "systemd/contained.hpp"

namespace runscope {
namespace {

using runscope::systemd_testing::eventually;
using runscope::systemd_testing::unique_name;
using runscope::testing::RunscopeCli;

constexpr const char* kSliceDir = "/sys/fs/cgroup/runscope.slice";

class RunscopeExecWithSystemd : public ::testing::Test {
 protected:
  void SetUp() override { RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD(); }
  bool scope_gone(const std::string& alloc, const std::string& task) {
    return eventually([&] { return !std::filesystem::exists(std::string(kSliceDir) + "/" + alloc + "-" + task + ".scope"); });
  }
  RunscopeCli cli_;
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

TEST_F(RunscopeExecWithSystemd, TheCommandsFirstActSeesItsScopeAndTheScopeIsGoneAfterwards) {
  const auto alloc = unique_name("exec");
  auto r = cli_.run({"exec", "--manager", "systemd", "--alloc", alloc, "--task", "first", "--", "sh", "-c",
                     "cat /proc/self/cgroup; exit 3"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(systemd_testing::unified_line(r.out), "/runscope.slice/" + alloc + "-first.scope") << r.out;
  EXPECT_TRUE(scope_gone(alloc, "first"));
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

}  // namespace
}  // namespace runscope
