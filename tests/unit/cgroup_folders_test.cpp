// Reading a task's cgroup by path (cgroup/folders.hpp), on fake v1 and v2 trees: the counters,
// the processes (sub-folders included on v2), and a clear not_found once the folders are gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include "cgroup/folders.hpp"
#include "common/error.hpp"
#include "support/fake_cgroup_tree.hpp"

namespace runscope::cgroup {
namespace {

using testing::FakeCgroupTree;

TEST(ReadingAV2TaskCgroupByPath, GivesItsCountersAndTheProcessesOfItsSubFoldersToo) {
  FakeCgroupTree tree;
  auto mount = tree.add_v2({"cpu", "memory", "pids"});
  auto task = mount / "runscope.slice" / "a-t.scope";
  tree.make_cgroup(task);
  tree.make_cgroup(task / "inner");
  tree.write(task / "cpu.stat", "usage_usec 30\nuser_usec 20\nsystem_usec 10\n");
  tree.write(task / "memory.current", "4096\n");
  tree.write(task / "memory.events", "low 0\noom_kill 2\n");
  tree.write(task / "cgroup.procs", "12\n10\n");
  tree.write(task / "inner" / "cgroup.procs", "11\n12\n");
  Folders where{task, {}};
  auto s = read_stats(where);
  EXPECT_EQ(s.cpu_user.count(), 20);
  EXPECT_EQ(s.cpu_system.count(), 10);
  EXPECT_EQ(s.memory_current, 4096u);
  EXPECT_EQ(s.oom_kills, 2u);
  EXPECT_EQ(read_pids(where), (std::vector<pid_t>{10, 11, 12}));
}

TEST(ReadingAV1TaskCgroupByPath, TakesEachCounterFromItsControllersFolder) {
  FakeCgroupTree tree;
  auto cpu = tree.add_v1("cpu,cpuacct", {"cpu", "cpuacct"});
  auto memory = tree.add_v1("memory", {"memory"});
  tree.make_cgroup(cpu / "p" / "a-t");
  tree.make_cgroup(memory / "p" / "a-t");
  auto ticks = static_cast<long>(::sysconf(_SC_CLK_TCK));
  tree.write(cpu / "p" / "a-t" / "cpuacct.stat", "user " + std::to_string(ticks) + "\nsystem 0\n");
  tree.write(memory / "p" / "a-t" / "memory.usage_in_bytes", "8192\n");
  tree.write(memory / "p" / "a-t" / "cgroup.procs", "7\n");
  tree.write(cpu / "p" / "a-t" / "cgroup.procs", "7\n");
  Folders where{{}, {{"cpu", cpu / "p" / "a-t"}, {"cpuacct", cpu / "p" / "a-t"}, {"memory", memory / "p" / "a-t"}}};
  auto s = read_stats(where);
  EXPECT_EQ(s.cpu_user.count(), 1000000);
  EXPECT_EQ(s.memory_current, 8192u);
  EXPECT_FALSE(s.pids_current);  // no pids hierarchy here: absent, not 0
  EXPECT_EQ(read_pids(where), (std::vector<pid_t>{7}));
}

TEST(ReadingATaskCgroupByPath, SaysNotFoundOnceItsFoldersAreGone) {
  FakeCgroupTree tree;
  auto mount = tree.add_v2({"cpu"});
  Folders gone{mount / "never-made", {}};
  try {
    read_stats(gone);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
  EXPECT_TRUE(read_pids(gone).empty());
}

}  // namespace
}  // namespace runscope::cgroup
