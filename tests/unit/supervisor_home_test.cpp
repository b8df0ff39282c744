// Where the cgroupfs backends put every task's shim (cgroup::SupervisorHome), on fake trees: one
// shared folder `<parent>/supervisors` in each hierarchy (cpuset included, with cpus and mems;
// memory beneath our own memory cgroup), never listed as a task's cgroup, made again when gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include "cgroup/v1_backend.hpp"
#include "cgroup/v2_backend.hpp"
#include "support/fake_cgroup_tree.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;

// Writes "0" through each join fd, as the forked shim does before it execs.
void join(const SupervisorHome& home) {
  for (int fd : home.join_fds()) ASSERT_EQ(::write(fd, "0", 1), 1);
}

class AV1SupervisorHome : public ::testing::Test {
 protected:
  void SetUp() override {
    cpuset_ = tree_.add_v1("cpuset", {"cpuset"});
    cpu_ = tree_.add_v1("cpu,cpuacct", {"cpu", "cpuacct"});
    memory_ = tree_.add_v1("memory", {"memory"});
    pids_ = tree_.add_v1("pids", {"pids"});
    tree_.make_cgroup(memory_ / "system.slice/runscoped.service");
  }
  std::unique_ptr<Backend> backend(const std::string& parent = "/runscope") {
    CgroupPaths own = {{"cpuset", "/"}, {"cpu", "/"}, {"cpuacct", "/"},
                       {"memory", "/system.slice/runscoped.service"}, {"pids", "/"}};
    return make_v1_backend(V1Options{tree_.layout(), own, parent, &clock_, tree_.ops(), tree_.root() / "proc"});
  }

  testing::FakeCgroupTree tree_;
  FakeClock clock_;
  fs::path cpuset_, cpu_, memory_, pids_;
  TaskId id_{"alloc1", "web"};
};

TEST_F(AV1SupervisorHome, IsOneSharedFolderBeneathTheParentInEveryHierarchyCpusetIncluded) {
  auto b = backend();
  auto task = b->create(id_, Limits{});
  auto* home = task->supervisor_home();
  ASSERT_NE(home, nullptr);
  join(*home);
  // The shim joined each hierarchy's `tasks` file (a thread moving itself), cpuset first.
  for (const auto& dir : {cpuset_ / "runscope/supervisors", cpu_ / "runscope/supervisors",
                          memory_ / "system.slice/runscoped.service/runscope/supervisors", pids_ / "runscope/supervisors"}) {
    EXPECT_EQ(tree_.read(dir / "tasks"), "0") << dir;
  }
  EXPECT_EQ(home->join_fds().size(), 4U);
  // Memory never leaves our own memory cgroup, even for an absolute parent.
  EXPECT_FALSE(tree_.exists(memory_ / "runscope"));
  // A v1 cpuset folder takes no process before it has CPUs and memory nodes.
  EXPECT_EQ(tree_.read(cpuset_ / "runscope/supervisors/cpuset.cpus"), "0-3");
  EXPECT_EQ(tree_.read(cpuset_ / "runscope/supervisors/cpuset.mems"), "0");
  EXPECT_NE(home->location().find((pids_ / "runscope/supervisors").string()), std::string::npos);
}

TEST_F(AV1SupervisorHome, IsSharedByEveryTaskAndNeverTakenForATasksCgroup) {
  auto b = backend();
  auto one = b->create(id_, Limits{});
  auto two = b->create(TaskId("alloc1", "db"), Limits{});
  join(*one->supervisor_home());
  join(*two->supervisor_home());
  EXPECT_EQ(tree_.read(pids_ / "runscope/supervisors/tasks"), "0") << "one folder for both, not one each";
  auto names = b->existing();
  ASSERT_EQ(names.size(), 2U);
  for (const auto& [name, partition] : names) EXPECT_NE(name, "supervisors");
  // Destroying a task leaves the home to the others.
  one->destroy(Deadline(clock_, std::chrono::seconds(1)));
  EXPECT_TRUE(tree_.exists(pids_ / "runscope/supervisors"));
}

TEST_F(AV1SupervisorHome, IsMadeAgainWhenSomeoneRemovedIt) {
  auto b = backend();
  auto task = b->create(id_, Limits{});
  join(*task->supervisor_home());
  for (const auto& dir : {cpuset_ / "runscope/supervisors", cpu_ / "runscope/supervisors", pids_ / "runscope/supervisors",
                          memory_ / "system.slice/runscoped.service/runscope/supervisors"}) {
    tree_.write(dir / "tasks", "");
    ASSERT_EQ(tree_.ops().remove_dir(dir), 0) << dir;
  }
  auto next = b->create(TaskId("alloc1", "next"), Limits{});
  join(*next->supervisor_home());
  EXPECT_EQ(tree_.read(cpu_ / "runscope/supervisors/tasks"), "0");
  EXPECT_EQ(tree_.read(cpuset_ / "runscope/supervisors/cpuset.cpus"), "0-3");
}

TEST_F(AV1SupervisorHome, MovesARunningShimInOnlyWhereTheKernelShowsItElsewhere) {
  auto b = backend("runscope-test");
  auto task = b->create(id_, Limits{});
  // Left in the daemon's cgroups by an older runscoped, but already in its home for pids.
  fs::create_directories(tree_.root() / "proc/4242");
  tree_.write(tree_.root() / "proc/4242/cgroup",
              "4:pids:/runscope-test/supervisors\n3:memory:/system.slice/runscoped.service\n2:cpu,cpuacct:/\n"
              "1:cpuset:/\n0::/system.slice/runscoped.service\n");
  task->supervisor_home()->move_in(4242);
  EXPECT_EQ(tree_.read(cpu_ / "runscope-test/supervisors/cgroup.procs"), "4242");
  EXPECT_EQ(tree_.read(cpuset_ / "runscope-test/supervisors/cgroup.procs"), "4242");
  EXPECT_EQ(tree_.read(memory_ / "system.slice/runscoped.service/runscope-test/supervisors/cgroup.procs"), "4242");
  EXPECT_EQ(tree_.read(pids_ / "runscope-test/supervisors/cgroup.procs"), "") << "moved where it already was";
  // An adopted cgroup (after a restart) hands out the same home.
  task->disown();
  auto adopted = b->adopt(id_.cgroup_name(), CpuPartition::none);
  ASSERT_NE(adopted->supervisor_home(), nullptr);
  EXPECT_EQ(adopted->supervisor_home()->location(), task->supervisor_home()->location());
  adopted->disown();
}

class AV2SupervisorHome : public ::testing::Test {
 protected:
  void SetUp() override { mount_ = tree_.add_v2({"cpu", "memory", "pids"}); }
  std::unique_ptr<Backend> backend() { return make_v2_backend(V2Options{mount_, "runscope", &clock_, tree_.ops()}); }

  testing::FakeCgroupTree tree_;
  FakeClock clock_;
  fs::path mount_;
  TaskId id_{"alloc1", "web"};
};

TEST_F(AV2SupervisorHome, IsALeafBesideTheTasksJoinedThroughCgroupProcs) {
  auto b = backend();
  auto task = b->create(id_, Limits{});
  auto* home = task->supervisor_home();
  ASSERT_NE(home, nullptr);
  join(*home);
  EXPECT_EQ(tree_.read(mount_ / "runscope/supervisors/cgroup.procs"), "0");
  EXPECT_EQ(home->location(), (mount_ / "runscope/supervisors").string());
  for (const auto& [name, partition] : b->existing()) EXPECT_NE(name, "supervisors");
  EXPECT_EQ(b->existing().size(), 1U);
  // The parent itself holds no process (no-internal-process rule): tasks and shims are leaves.
  EXPECT_EQ(tree_.read(mount_ / "runscope/cgroup.procs"), "");
}

}  // namespace
}  // namespace runscope::cgroup
