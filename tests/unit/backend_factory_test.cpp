// Manager selection for every host mode and config choice, without touching the host.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "driver/manager_choice.hpp"

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

// Seen inside the contained systemd: cgroup2 mounted over the hybrid host's /sys/fs/cgroup.
constexpr const char* kShadowedHybrid =
    "47 46 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "48 47 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "51 47 0:32 /../.. /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "57 47 0:38 /.. /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "66 47 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n";

TEST(DetectLayout, SeesOnlyTheCgroup2TreeMountedOverAHybridHost) {
  EXPECT_EQ(cgroup::drop_shadowed_mounts(kShadowedHybrid), "66 47 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n");
  auto layout = cgroup::parse_mountinfo(cgroup::drop_shadowed_mounts(kShadowedHybrid));
  EXPECT_EQ(layout.mode, Mode::unified);
  EXPECT_EQ(layout.unified_mount, "/sys/fs/cgroup");
}

TEST(DetectLayout, KeepsEveryMountOfAnOrdinaryHybridHost) {
  std::string text(kShadowedHybrid);
  text.erase(text.rfind("66 47"));
  EXPECT_EQ(cgroup::drop_shadowed_mounts(text), text);
  EXPECT_EQ(cgroup::parse_mountinfo(cgroup::drop_shadowed_mounts(text)).mode, Mode::hybrid);
}

TEST(V2Parent, AnchorsALeadingSlashAtTheRootAndNestsTheRestBeneathOurOwnCgroup) {
  cgroup::CgroupPaths own{{cgroup::kUnifiedKey, "/user.slice/me.scope"}};
  EXPECT_EQ(v2_parent("/runscope", own), "runscope");
  EXPECT_EQ(v2_parent("runscope-test-1", own), "user.slice/me.scope/runscope-test-1");
  EXPECT_EQ(v2_parent("runscope-test-1", {{cgroup::kUnifiedKey, "/"}}), "runscope-test-1");
}

}  // namespace
}  // namespace runscope::driver
