#include <gtest/gtest.h>

#include "cgroup/host.hpp"
#include "common/error.hpp"
#include "support/fake_cgroup_tree.hpp"

namespace runscope::cgroup {
namespace {

// This machine's real mountinfo: v1 controllers each on its own mount plus a bare cgroup2.
constexpr const char* kHybrid = R"(22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
)";

// A Debian 12 host: cgroup2 only.
constexpr const char* kUnified = R"(24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 24 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
)";

// A CentOS 7 style host: v1 only, cpu and cpuacct co-mounted, options with flags.
constexpr const char* kLegacy = R"(25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
30 25 0:26 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpuset,clone_children
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,freezer
)";

TEST(HostDetection, ReadsThisMachinesHybridLayout) {
  auto layout = parse_mountinfo(kHybrid);
  EXPECT_EQ(layout.mode, Mode::hybrid);
  EXPECT_EQ(layout.version(), Version::v1);
  EXPECT_EQ(layout.unified_mount, "/sys/fs/cgroup/unified");
  EXPECT_EQ(layout.v1_mounts.at("memory"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(layout.v1_mounts.at("cpuacct"), "/sys/fs/cgroup/cpuacct");
  EXPECT_EQ(layout.v1_mounts.size(), 8u);  // name=systemd is not a controller
  EXPECT_FALSE(layout.v1_mounts.count("name=systemd"));
}

TEST(HostDetection, ReadsAUnifiedHostAsV2) {
  auto layout = parse_mountinfo(kUnified);
  EXPECT_EQ(layout.mode, Mode::unified);
  EXPECT_EQ(layout.version(), Version::v2);
  EXPECT_EQ(layout.unified_mount, "/sys/fs/cgroup");
  EXPECT_TRUE(layout.v1_mounts.empty());
}

TEST(HostDetection, ReadsALegacyHostWithCoMountedControllers) {
  auto layout = parse_mountinfo(kLegacy);
  EXPECT_EQ(layout.mode, Mode::legacy);
  EXPECT_EQ(layout.version(), Version::v1);
  EXPECT_TRUE(layout.unified_mount.empty());
  EXPECT_EQ(layout.v1_mounts.at("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout.v1_mounts.at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout.v1_mounts.at("cpuset"), "/sys/fs/cgroup/cpuset");
  EXPECT_FALSE(layout.v1_mounts.count("clone_children"));
  EXPECT_FALSE(layout.v1_mounts.count("pids"));
}

TEST(HostDetection, DecodesEscapedMountPoints) {
  auto layout = parse_mountinfo("41 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(layout.unified_mount, "/mnt/my cgroups");
}

TEST(HostDetection, RejectsAHostWithoutCgroups) {
  try {
    parse_mountinfo("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
}

TEST(OwnCgroups, MapsEveryControllerAndTheUnifiedLine) {
  auto own = parse_proc_cgroup(
      "9:name=systemd:/\n4:memory:/process_api/47e3\n2:cpu,cpuacct:/a:b\n0::/user.slice\n");
  EXPECT_EQ(own.at("memory"), "/process_api/47e3");
  EXPECT_EQ(own.at("cpu"), "/a:b");
  EXPECT_EQ(own.at("cpuacct"), "/a:b");
  EXPECT_EQ(own.at("name=systemd"), "/");
  EXPECT_EQ(own.at(kUnifiedKey), "/user.slice");
}

TEST(Probe, ReportsControllersKillAndOnlineCpus) {
  testing::FakeCgroupTree tree;
  tree.add_v2({"pids", "cpu", "memory"});
  tree.add_v1("memory", {"memory"});
  tree.make_cgroup(tree.root() / "unified" / "user.slice");
  std::filesystem::create_directories(tree.root() / "sys/devices/system/cpu");
  tree.write(tree.root() / "sys/devices/system/cpu/online", "0-3,6\n");

  auto p = probe(tree.layout(), {{kUnifiedKey, "/user.slice"}}, tree.root() / "sys");
  EXPECT_EQ(p.mode, Mode::hybrid);
  EXPECT_EQ(p.version, Version::v1);
  EXPECT_EQ(p.v1_controllers, (std::vector<std::string>{"memory"}));
  EXPECT_EQ(p.v2_controllers, (std::vector<std::string>{"cpu", "memory", "pids"}));
  EXPECT_TRUE(p.cgroup_kill);
  EXPECT_EQ(p.online_cpus.to_string(), "0-3,6");

  auto attrs = probe_attributes(p);
  EXPECT_EQ(attrs.at("unique.cgroups.version"), "v1");
  EXPECT_EQ(attrs.at("unique.cgroups.mode"), "hybrid");
  EXPECT_EQ(attrs.at("cgroups.v2.controllers"), "cpu,memory,pids");
  EXPECT_EQ(attrs.at("cgroups.kill"), "true");
  EXPECT_EQ(attrs.at("cpu.online"), "0-3,6");
}

TEST(Probe, SeesNoCgroupKillWhereTheKernelLacksIt) {
  testing::FakeCgroupTree tree;
  tree.add_v2({}, /*with_kill=*/false);
  tree.make_cgroup(tree.root() / "unified" / "init.scope");
  std::filesystem::create_directories(tree.root() / "sys/devices/system/cpu");
  tree.write(tree.root() / "sys/devices/system/cpu/online", "0\n");
  auto p = probe(tree.layout(), {{kUnifiedKey, "/init.scope"}}, tree.root() / "sys");
  EXPECT_EQ(p.version, Version::v2);
  EXPECT_FALSE(p.cgroup_kill);
  EXPECT_TRUE(p.v2_controllers.empty());
}

}  // namespace
}  // namespace runscope::cgroup
