// What runscoped's config sets in its task manager (runscoped/options.hpp): the one copy of the
// rule, including the cleanup deadline that must cover a slow systemd job.
#include <gtest/gtest.h>

#include "runscoped/options.hpp"

namespace runscope::runscoped {
namespace {

using namespace std::chrono_literals;

const driver::ManagerDecision kSystemd{driver::ManagerKind::systemd, cgroup::Version::v2};
const driver::ManagerDecision kV1{driver::ManagerKind::cgroupfs, cgroup::Version::v1};
const driver::ManagerDecision kV2{driver::ManagerKind::cgroupfs, cgroup::Version::v2};

TEST(RunscopedManagerOptions, StretchTheCleanupDeadlineToASlowerSystemdTimeout) {
  config::Config cfg;
  cfg.cgroups.systemd_timeout = 90s;
  EXPECT_EQ(manager_options(cfg, kSystemd).cleanup_timeout, Duration(90s));
  cfg.cgroups.systemd_timeout = 10s;  // never shorter than the default
  EXPECT_EQ(manager_options(cfg, kSystemd).cleanup_timeout, Duration(30s));
}

TEST(RunscopedManagerOptions, TakeStateDirAndTaskPolicyFromTheConfig) {
  config::Config cfg;
  cfg.daemon.state_dir = "/srv/state";
  cfg.task.denied_uids = {7};
  cfg.task.kill_signal = 2;
  cfg.task.kill_timeout = 3s;
  auto o = manager_options(cfg, kV1);
  EXPECT_EQ(o.state_dir, "/srv/state");
  EXPECT_EQ(o.denied_uids, std::vector<uid_t>{7});
  EXPECT_EQ(o.kill_signal, 2);
  EXPECT_EQ(o.kill_timeout, Duration(3s));
}

TEST(RunscopedManagerOptions, SendAutoLogsToTheJournalOnlyOnTheSystemdPath) {
  config::Config cfg;
  EXPECT_TRUE(manager_options(cfg, kSystemd).journal_logs);
  EXPECT_FALSE(manager_options(cfg, kV1).journal_logs);
  EXPECT_FALSE(manager_options(cfg, kV2).journal_logs);
}

TEST(RunscopedManagerOptions, CloseRunningTasksCgroupsOnlyWhereTheyCostAFolderPerHierarchy) {
  config::Config cfg;
  EXPECT_TRUE(manager_options(cfg, kV1).release_cgroups);
  EXPECT_FALSE(manager_options(cfg, kV2).release_cgroups);
  EXPECT_FALSE(manager_options(cfg, kSystemd).release_cgroups);
}

}  // namespace
}  // namespace runscope::runscoped
