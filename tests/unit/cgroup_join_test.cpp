// Where a task's journal forwarder joins it: the cgroups the task is in and the shim is not, read
// from a fake /proc (the task's and our own /proc/PID/cgroup, our mountinfo).
#include <gtest/gtest.h>

#include <fstream>

#include "cgroup/host.hpp"
#include "common/error.hpp"
#include "driver/cgroup_join.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::driver {
namespace {

namespace fs = std::filesystem;

class CgroupJoinPaths : public ::testing::Test {
 protected:
  void write(const fs::path& rel, const std::string& text) {
    fs::create_directories((proc() / rel).parent_path());
    std::ofstream(proc() / rel) << text;
  }
  fs::path proc() const { return dir_.path() / "proc"; }
  std::string cg(const std::string& rel) const {
    return rel.empty() ? (dir_.path() / "cg").string() : (dir_.path() / "cg" / rel).string();
  }
  std::string mount(const std::string& id, const std::string& at, const std::string& type, const std::string& super) {
    return id + " 25 0:" + id + " / " + cg(at) + " rw,nosuid - " + type + " " + type + " " + super + "\n";
  }

  testing::TempDir dir_;
};

TEST_F(CgroupJoinPaths, NameEveryV1HierarchyTheTaskWasMovedToCpusetFirstAndCoMountedOnce) {
  write("self/mountinfo", mount("30", "cpu,cpuacct", "cgroup", "rw,cpu,cpuacct") +
                              mount("31", "memory", "cgroup", "rw,memory") + mount("32", "cpuset", "cgroup", "rw,cpuset") +
                              mount("33", "unified", "cgroup2", "rw") +
                              mount("34", "systemd", "cgroup", "rw,xattr,name=systemd"));
  write("self/cgroup",
        "5:cpuset:/\n4:cpu,cpuacct:/daemon\n3:memory:/user/me\n1:name=systemd:/system.slice/runscoped.service\n"
        "0::/system.slice/runscoped.service\n");
  write("4242/cgroup",
        "5:cpuset:/runscope/shared\n4:cpu,cpuacct:/runscope/a-t\n3:memory:/user/me/runscope/a-t\n"
        "1:name=systemd:/system.slice/runscoped.service\n0::/system.slice/runscoped.service\n");
  EXPECT_EQ(cgroup_join_paths(4242, proc()),
            (std::vector<std::string>{cg("cpuset/runscope/shared/tasks"), cg("cpu,cpuacct/runscope/a-t/tasks"),
                                      cg("memory/user/me/runscope/a-t/tasks")}));
}

TEST_F(CgroupJoinPaths, NameTheScopesCgroupProcsOnCgroup2) {
  write("self/mountinfo", mount("30", "", "cgroup2", "rw,nsdelegate"));
  write("self/cgroup", "0::/system.slice/runscoped.service\n");
  write("7/cgroup", "0::/runscope.slice/a-t.scope\n");
  EXPECT_EQ(cgroup_join_paths(7, proc()), std::vector<std::string>{cg("runscope.slice/a-t.scope/cgroup.procs")});
}

// A contained systemd: cgroup2 mounted over a hybrid host's tree, whose hierarchies mountinfo
// still lists. Only the mount we can see counts.
TEST_F(CgroupJoinPaths, IgnoreMountsHiddenBeneathALaterOne) {
  write("self/mountinfo", mount("30", "memory", "cgroup", "rw,memory") + mount("31", "unified", "cgroup2", "rw") +
                              mount("40", "", "cgroup2", "rw,nsdelegate"));
  write("self/cgroup", "0::/system.slice/runscoped.service\n");
  write("7/cgroup", "0::/runscope.slice/a-t.scope\n");
  EXPECT_EQ(cgroup_join_paths(7, proc()), std::vector<std::string>{cg("runscope.slice/a-t.scope/cgroup.procs")});
}

TEST_F(CgroupJoinPaths, AreEmptyWhenTheTaskIsWhereWeAre) {
  write("self/mountinfo", mount("30", "", "cgroup2", "rw"));
  write("self/cgroup", "0::/here\n");
  write("7/cgroup", "0::/here\n");
  EXPECT_TRUE(cgroup_join_paths(7, proc()).empty());
}

TEST_F(CgroupJoinPaths, RefuseAHierarchyThatDiffersButIsNotMountedHere) {
  write("self/mountinfo", mount("30", "memory", "cgroup", "rw,memory"));
  write("self/cgroup", "3:memory:/\n1:name=elsewhere:/a\n");
  write("7/cgroup", "3:memory:/t\n1:name=elsewhere:/b\n");
  try {
    cgroup_join_paths(7, proc());
    FAIL() << "joined half the task's cgroups";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_STREQ(e.what(), "pid 7 is in cgroup '/b' of hierarchy 'name=elsewhere', which is not mounted here");
  }
}

TEST_F(CgroupJoinPaths, NameTheFileOfATaskThatIsGone) {
  write("self/mountinfo", mount("30", "", "cgroup2", "rw"));
  write("self/cgroup", "0::/here\n");
  try {
    cgroup_join_paths(99, proc());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("99/cgroup"), std::string::npos) << e.what();
  }
}

TEST(DropShadowedMounts, KeepsOnlyTheMountsThisProcessCanSee) {
  const std::string hybrid = "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs ro\n"
                             "31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                             "32 30 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
                             "40 25 0:29 / /run rw - tmpfs tmpfs rw\n";
  const std::string over = "66 30 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(cgroup::drop_shadowed_mounts(hybrid), hybrid) << "nothing hides anything";
  EXPECT_EQ(cgroup::drop_shadowed_mounts(hybrid + over), "40 25 0:29 / /run rw - tmpfs tmpfs rw\n" + over);
  EXPECT_EQ(cgroup::drop_shadowed_mounts("1 0 0:1 / / rw - ext4 sda rw\n" + hybrid + "9 1 0:2 / / rw - x y rw\n"),
            "1 0 0:1 / / rw - ext4 sda rw\n" + hybrid + "9 1 0:2 / / rw - x y rw\n")
      << "a late / hides nothing";
}

TEST(AJoinOnlyCgroup, OpensEachFileForWritingAndIsNeverPlaced) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "tasks") << "";
  JoinOnlyCgroup cg({(dir.path() / "tasks").string()});
  auto fds = cg.open_join_files();
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_EQ(::write(fds[0].get(), "0", 1), 1);
  EXPECT_THROW(cg.place(1), Error);
  EXPECT_THROW(JoinOnlyCgroup({(dir.path() / "missing" / "tasks").string()}).open_join_files(), Error);
}

}  // namespace
}  // namespace runscope::driver
