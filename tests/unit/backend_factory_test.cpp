// Manager selection for every host mode and config choice, without touching the host.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "driver/backend_factory.hpp"

namespace runscope::driver {
namespace {

using cgroup::Mode;
using cgroup::Version;
using config::ManagerChoice;

cgroup::HostLayout layout_of(Mode mode) {
  cgroup::HostLayout layout;
  layout.mode = mode;
  if (mode == Mode::unified) layout.unified_mount = "/sys/fs/cgroup";
  if (mode == Mode::hybrid) layout.unified_mount = "/sys/fs/cgroup/unified";
  if (mode != Mode::unified) layout.v1_mounts = {{"cpuset", "/sys/fs/cgroup/cpuset"}};
  return layout;
}

auto systemd_up = [] { return true; };
auto systemd_down = [] { return false; };
auto must_not_ask = [] {
  ADD_FAILURE() << "asked whether systemd runs where it cannot matter";
  return true;
};

TEST(ChooseManager, AutoPicksSystemdOnAUnifiedHostWhereItRuns) {
  EXPECT_EQ(choose_manager({}, layout_of(Mode::unified), systemd_up), (ManagerDecision{ManagerKind::systemd, Version::v2}));
}

TEST(ChooseManager, AutoPicksTheV2CgroupfsBackendOnAUnifiedHostWithoutSystemd) {
  EXPECT_EQ(choose_manager({}, layout_of(Mode::unified), systemd_down),
            (ManagerDecision{ManagerKind::cgroupfs, Version::v2}));
}

TEST(ChooseManager, AutoPicksTheV1CgroupfsBackendOnHybridAndLegacyHosts) {
  for (Mode mode : {Mode::hybrid, Mode::legacy}) {
    EXPECT_EQ(choose_manager({}, layout_of(mode), must_not_ask), (ManagerDecision{ManagerKind::cgroupfs, Version::v1}));
  }
}

TEST(ChooseManager, ForcedCgroupfsFollowsTheHostVersion) {
  ManagerQuery q{ManagerChoice::cgroupfs, false};
  EXPECT_EQ(choose_manager(q, layout_of(Mode::unified), must_not_ask).version, Version::v2);
  EXPECT_EQ(choose_manager(q, layout_of(Mode::hybrid), must_not_ask).version, Version::v1);
}

TEST(ChooseManager, ForcingSystemdOnAHybridHostIsAnErrorNamingTheMode) {
  try {
    choose_manager({ManagerChoice::systemd, false}, layout_of(Mode::hybrid), must_not_ask);
    FAIL() << "systemd chosen on a hybrid host";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("hybrid"), std::string::npos) << e.what();
  }
}

TEST(ChooseManager, ForcingSystemdWhereItDoesNotRunIsAnError) {
  EXPECT_THROW(choose_manager({ManagerChoice::systemd, false}, layout_of(Mode::unified), systemd_down), Error);
}

TEST(ChooseManager, TheTestOverrideDrivesTheCgroup2MountOfAHybridHost) {
  EXPECT_EQ(choose_manager({ManagerChoice::automatic, true}, layout_of(Mode::hybrid), must_not_ask),
            (ManagerDecision{ManagerKind::cgroupfs, Version::v2}));
  EXPECT_THROW(choose_manager({ManagerChoice::automatic, true}, layout_of(Mode::legacy), must_not_ask), Error);
  EXPECT_THROW(choose_manager({ManagerChoice::systemd, true}, layout_of(Mode::hybrid), must_not_ask), Error);
}

TEST(V2Parent, AnchorsALeadingSlashAtTheRootAndNestsTheRestBeneathOurOwnCgroup) {
  cgroup::CgroupPaths own{{cgroup::kUnifiedKey, "/user.slice/me.scope"}};
  EXPECT_EQ(v2_parent("/runscope", own), "runscope");
  EXPECT_EQ(v2_parent("runscope-test-1", own), "user.slice/me.scope/runscope-test-1");
  EXPECT_EQ(v2_parent("runscope-test-1", {{cgroup::kUnifiedKey, "/"}}), "runscope-test-1");
}

}  // namespace
}  // namespace runscope::driver
