// Host detection from mountinfo, checked against an independent oracle: systemd's statfs method.
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/statfs.h>

#include "cgroup/host.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::cgroup {
namespace {

bool fs_type_is(const char* path, long magic) {
  struct statfs s {};
  return ::statfs(path, &s) == 0 && static_cast<long>(s.f_type) == magic;
}

TEST(HostDetectionOnThisHost, AgreesWithTheStatfsOfSysFsCgroup) {
  if (!fs_type_is("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC) && !fs_type_is("/sys/fs/cgroup", TMPFS_MAGIC)) {
    GTEST_SKIP() << "/sys/fs/cgroup is neither cgroup2 nor tmpfs here";
  }
  Mode expected = Mode::legacy;
  if (fs_type_is("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC)) {
    expected = Mode::unified;
  } else if (fs_type_is("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC)) {
    expected = Mode::hybrid;
  }
  auto layout = driver::detect_layout();
  EXPECT_EQ(to_string(layout.mode), to_string(expected));
  auto p = probe(layout, own_cgroups());
  EXPECT_FALSE(p.online_cpus.empty());
  if (layout.mode == Mode::hybrid) {
    EXPECT_EQ(p.version, Version::v1);
    EXPECT_EQ(layout.unified_mount, "/sys/fs/cgroup/unified");
    EXPECT_TRUE(layout.v1_mounts.count("memory"));
  }
}

}  // namespace
}  // namespace runscope::cgroup
