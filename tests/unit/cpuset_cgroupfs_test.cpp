#include "cpuset/cgroupfs_applier.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "cpuset/cpusets.hpp"
#include "support/fake_cgroup_tree.hpp"

namespace runscope::cpuset {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::FakeCgroupTree;

std::string cpus_in(const FakeCgroupTree& tree, const fs::path& dir) {
  return CpuSet::parse(tree.read(dir / kCpusFile)).to_string();
}

// The fake v1 cpuset root owns CPUs 0-3 and memory node 0.
struct V1Fixture {
  FakeCgroupTree tree;
  fs::path mount = tree.add_v1("cpuset", {"cpuset"});
  fs::path parent = mount / "runscope";
  CgroupfsApplier applier{{parent, cgroup::Version::v1, tree.ops()}};
  FakeClock clock;
};

Planner planner_0_3(unsigned min_shared = 1) {
  return Planner(Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, min_shared);
}

TEST(ACgroupfsApplier, MakesTheV1LayoutWithMemoryNodesAndCpus) {
  V1Fixture f;
  Cpusets c(planner_0_3(), f.applier, f.clock, std::chrono::seconds(30));
  c.start();
  EXPECT_EQ(cpus_in(f.tree, f.parent), "0-3");
  EXPECT_EQ(cpus_in(f.tree, f.parent / "shared"), "0-3");
  EXPECT_EQ(cpus_in(f.tree, f.parent / "reserved"), "0-3");
  EXPECT_EQ(f.tree.read(f.parent / "shared" / kMemsFile), "0");
  EXPECT_EQ(f.tree.read(f.parent / "reserved" / kMemsFile), "0");
}

TEST(ACgroupfsApplier, GrowsAnExistingV1ParentThatLacksUsableCpus) {
  V1Fixture f;
  f.tree.make_cgroup(f.parent);
  f.tree.write(f.parent / kCpusFile, "0-1\n");
  f.tree.write(f.parent / kMemsFile, "0\n");
  f.applier.prepare(CpuSet::parse("1-3"));
  EXPECT_EQ(cpus_in(f.tree, f.parent), "0-3");
}

TEST(ACgroupfsApplier, ReservesWithAConstantNumberOfWritesWhateverTheSharedTaskCount) {
  for (int shared_tasks : {1, 10, 100}) {
    V1Fixture f;
    Cpusets c(planner_0_3(), f.applier, f.clock, std::chrono::seconds(30));
    c.start();
    std::string procs;
    for (int i = 0; i < shared_tasks; ++i) {
      procs += std::to_string(100000 + i) + "\n";
      c.add_shared_task();
    }
    f.tree.write(f.parent / "shared" / "cgroup.procs", procs);
    auto before = c.counts();
    TaskId id("a", "t");
    auto cpus = c.reserve(id, 2);
    f.tree.make_cgroup(f.parent / "reserved" / id.cgroup_name());  // the backend makes the task
    f.tree.write(f.parent / "reserved" / id.cgroup_name() / kCpusFile, cpus.to_string());
    c.release(id);
    auto after = c.counts();
    EXPECT_EQ(after.writes - before.writes, 2u) << shared_tasks << " shared tasks";
    // reserve: reserved, shared, the task (not made yet); release: reserved, shared
    EXPECT_EQ(after.reads - before.reads, 5u) << shared_tasks << " shared tasks";
    EXPECT_EQ(cpus_in(f.tree, f.parent / "shared"), "0-3");
  }
}

TEST(ACgroupfsApplier, SetsAReservedTaskMadeWithoutItsCpusAndPutsBackDrift) {
  V1Fixture f;
  Cpusets c(planner_0_3(), f.applier, f.clock, std::chrono::seconds(30));
  c.start();
  TaskId id("alloc", "db");
  auto cpus = c.reserve(id, 1);
  EXPECT_EQ(cpus_in(f.tree, f.parent / "shared"), (CpuSet::parse("0-3") - cpus).to_string());
  auto task_dir = f.parent / "reserved" / "alloc-db";
  f.tree.make_cgroup(task_dir);
  c.reconcile_now();
  EXPECT_EQ(cpus_in(f.tree, task_dir), cpus.to_string());
  f.tree.write(f.parent / "shared" / kCpusFile, "0-3\n");
  f.tree.write(task_dir / kCpusFile, "0-3\n");
  auto before = c.counts().writes;
  c.reconcile_now();
  EXPECT_EQ(c.counts().writes - before, 2u);
  EXPECT_EQ(cpus_in(f.tree, task_dir), cpus.to_string());
  before = c.counts().writes;
  c.reconcile_now();
  EXPECT_EQ(c.counts().writes, before) << "a matching tree was written";
}

TEST(ACgroupfsApplier, UsesTheSameFoldersAsTheCgroupBackends) {
  FakeCgroupTree tree;
  CgroupfsApplier a({tree.root() / "p", cgroup::Version::v1, tree.ops()});
  EXPECT_EQ(a.folder(Target::shared()), tree.root() / "p" / "shared");
  EXPECT_EQ(a.folder(Target::reserved()), tree.root() / "p" / "reserved");
  EXPECT_EQ(a.folder(Target::of(TaskId("a b", "t"))), tree.root() / "p" / "reserved" / "a\\x20b-t");
}

TEST(ACgroupfsApplier, EnablesTheCpusetControllerDownTheV2Path) {
  FakeCgroupTree tree;
  auto mount = tree.add_v2({"cpuset", "memory"});
  CgroupfsApplier a({mount / "runscope", cgroup::Version::v2, tree.ops()});
  FakeClock clock;
  Cpusets c(planner_0_3(), a, clock, std::chrono::seconds(30));
  c.start();
  EXPECT_EQ(tree.read(mount / kSubtreeControlFile), "+cpuset");
  EXPECT_EQ(tree.read(mount / "runscope" / kSubtreeControlFile), "+cpuset");
  EXPECT_EQ(tree.read(mount / "runscope" / "reserved" / kSubtreeControlFile), "+cpuset");
  EXPECT_EQ(cpus_in(tree, mount / "runscope" / "shared"), "0-3");
  c.reserve(TaskId("a", "t"), 3);
  EXPECT_EQ(cpus_in(tree, mount / "runscope" / "shared"), "3");
}

TEST(ACgroupfsApplier, SaysTheV2CpusetControllerIsMissing) {
  FakeCgroupTree tree;
  auto mount = tree.add_v2({"memory", "pids"});
  CgroupfsApplier a({mount / "runscope", cgroup::Version::v2, tree.ops()});
  try {
    a.prepare(CpuSet::parse("0-1"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_THAT(e.what(), HasSubstr("cpuset controller is not available in " + (mount / "cgroup.controllers").string()));
  }
}

TEST(ACgroupfsApplier, NamesAFileWithGarbage) {
  V1Fixture f;
  f.applier.prepare(CpuSet::parse("0-3"));
  f.tree.write(f.parent / "shared" / kCpusFile, "zz\n");
  try {
    f.applier.read(Target::shared());
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr((f.parent / "shared" / kCpusFile).string()));
  }
}

}  // namespace
}  // namespace runscope::cpuset
