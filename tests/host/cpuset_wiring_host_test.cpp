// The daemon's cpuset wiring against this machine's real cgroup2 mount: where it offers no cpuset
// controller (this hybrid host's /sys/fs/cgroup/unified), a v2 cgroupfs daemon turns cpusets off
// and says why, naming the file; nothing is made.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "wiring/cpuset_wiring.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::daemon {
namespace {

using wiring::choose_cpuset_applier;

TEST(TheDaemonCpusetWiringOnThisHost, SaysTheCgroup2CpusetControllerIsMissingAndMakesNothing) {
  auto layout = driver::detect_layout();
  if (layout.unified_mount.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  std::ifstream in(layout.unified_mount / "cgroup.controllers");
  std::stringstream offered;
  offered << in.rdbuf();
  if (offered.str().find("cpuset") != std::string::npos) GTEST_SKIP() << "this host's cgroup2 offers cpuset";
  config::Config cfg;
  cfg.cgroups.parent = "runscope-test-" + std::to_string(::getpid()) + "-wiring";
  auto own = cgroup::own_cgroups();
  auto choice = choose_cpuset_applier(cfg, {driver::ManagerKind::cgroupfs, cgroup::Version::v2}, nullptr, layout, own);
  EXPECT_EQ(choice.applier, nullptr);
  EXPECT_EQ(choice.off_reason,
            "the cpuset controller is not available at " + (layout.unified_mount / "cgroup.controllers").string());
  EXPECT_FALSE(std::filesystem::exists(layout.unified_mount / driver::v2_parent(*cfg.cgroups.parent, own)));
}

}  // namespace
}  // namespace runscope::daemon
