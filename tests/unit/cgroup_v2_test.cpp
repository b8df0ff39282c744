#include <gtest/gtest.h>

#include "cgroup/v2_backend.hpp"
#include "cgroup/v2_dir.hpp"
#include "common/error.hpp"
#include "support/fake_cgroup_tree.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class AV2Backend : public ::testing::Test {
 protected:
  void SetUp() override { mount_ = tree_.add_v2({"cpuset", "cpu", "io", "memory", "pids"}); }

  std::unique_ptr<Backend> backend(const fs::path& parent = "runscope") {
    return make_v2_backend(V2Options{mount_, parent, &clock_, tree_.ops()});
  }

  testing::FakeCgroupTree tree_;
  FakeClock clock_;
  fs::path mount_;
  TaskId id_{"alloc1", "web"};
};

TEST_F(AV2Backend, MakesOneFolderUnderTheParentWithItsLimits) {
  Limits limits;
  limits.memory_max = 64 << 20;
  limits.cpu_weight = 200;
  limits.pids_max = 50;
  limits.cpuset = CpuSet::parse("1");
  auto task = backend()->create(id_, limits);
  auto dir = mount_ / "runscope" / "alloc1-web";
  EXPECT_EQ(task->location(), dir.string());
  EXPECT_EQ(tree_.read(dir / "memory.max"), "67108864");
  EXPECT_EQ(tree_.read(dir / "cpu.weight"), "200");
  EXPECT_EQ(tree_.read(dir / "pids.max"), "50");
  EXPECT_EQ(tree_.read(dir / "cpuset.cpus"), "1");
  EXPECT_GE(task->clone_into_fd(), 0);
}

TEST_F(AV2Backend, EnablesOfferedControllersDownThePath) {
  auto task = backend("a/b")->create(id_, Limits{});
  EXPECT_EQ(tree_.read(mount_ / "cgroup.subtree_control"), "+cpu +cpuset +memory +pids");
  EXPECT_EQ(tree_.read(mount_ / "a" / "cgroup.subtree_control"), "+cpu +cpuset +memory +pids");
  EXPECT_EQ(tree_.read(mount_ / "a/b" / "cgroup.subtree_control"), "+cpu +cpuset +memory +pids");
}

TEST_F(AV2Backend, PutsPartitionedTasksInTheirPartitionFolder) {
  Limits shared;
  shared.partition = CpuPartition::shared;
  auto a = backend()->create(id_, shared);
  EXPECT_EQ(a->location(), (mount_ / "runscope/shared/alloc1-web").string());
  Limits reserved;
  reserved.partition = CpuPartition::reserved;
  reserved.cpuset = CpuSet::parse("2-3");
  auto b = backend()->create(TaskId("alloc1", "db"), reserved);
  EXPECT_EQ(b->location(), (mount_ / "runscope/reserved/alloc1-db").string());
  EXPECT_EQ(tree_.read(mount_ / "runscope/reserved/alloc1-db/cpuset.cpus"), "2-3");
  b->destroy(Deadline(clock_, 1s));
  EXPECT_TRUE(tree_.exists(mount_ / "runscope/reserved"));  // the partition folder is never removed
}

TEST_F(AV2Backend, RefusesAParentThatClimbsOutOfTheHierarchy) {
  try {
    backend("a/../../etc");
    FAIL() << "expected invalid_argument";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("a/../../etc"), std::string::npos);
  }
}

TEST_F(AV2Backend, RefusesATakenName) {
  auto first = backend()->create(id_, Limits{});
  try {
    backend()->create(id_, Limits{});
    FAIL() << "expected a conflict";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
  }
  EXPECT_TRUE(tree_.exists(mount_ / "runscope/alloc1-web"));  // the first one is untouched
}

TEST_F(AV2Backend, DestroyRemovesTheFolderAndIsIdempotent) {
  auto task = backend()->create(id_, Limits{});
  task->destroy(Deadline(clock_, 1s));
  EXPECT_FALSE(tree_.exists(mount_ / "runscope/alloc1-web"));
  task->destroy(Deadline(clock_, 1s));
}

TEST_F(AV2Backend, DestructorRemovesTheFolder) {
  backend()->create(id_, Limits{}).reset();
  EXPECT_FALSE(tree_.exists(mount_ / "runscope/alloc1-web"));
}

TEST(AV2BackendWithoutControllers, RefusesAMemoryLimitNamingTheControllerAndMakesNothing) {
  testing::FakeCgroupTree tree;
  auto mount = tree.add_v2({});  // like this machine's hybrid cgroup2
  FakeClock clock;
  auto backend = make_v2_backend(V2Options{mount, "runscope", &clock, tree.ops()});
  Limits limits;
  limits.memory_max = 1 << 20;
  try {
    backend->create(TaskId("a", "b"), limits);
    FAIL() << "expected unsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("'memory'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(tree.cgroups_below(mount).empty());
}

TEST(AV2BackendWithoutControllers, StillConfinesATaskWithoutLimits) {
  testing::FakeCgroupTree tree;
  auto mount = tree.add_v2({});
  FakeClock clock;
  auto task = make_v2_backend(V2Options{mount, "runscope", &clock, tree.ops()})->create(TaskId("a", "b"), {});
  EXPECT_TRUE(tree.exists(mount / "runscope/a-b/cgroup.procs"));
  EXPECT_EQ(tree.read(mount / "cgroup.subtree_control"), "");
}

class AV2Dir : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mount = tree_.add_v2({"pids"});
    path_ = mount / "task";
    tree_.make_cgroup(path_);
  }
  testing::FakeCgroupTree tree_;
  FakeClock clock_;
  fs::path path_;
};

TEST_F(AV2Dir, KillAllStopsForksThenUsesCgroupKill) {
  auto dir = V2Dir::open(path_);
  dir.kill_all(Deadline(clock_, 1s));
  EXPECT_EQ(tree_.read(path_ / "pids.max"), "0");
  EXPECT_EQ(tree_.read(path_ / "cgroup.kill"), "1");
  EXPECT_EQ(tree_.read(path_ / "cgroup.freeze"), "0\n");  // never froze
}

TEST_F(AV2Dir, FreezeMethodFreezesAndAlwaysThaws) {
  tree_.write(path_ / "cgroup.events", "populated 0\nfrozen 1\n");
  auto dir = V2Dir::open(path_);
  dir.kill_all(Deadline(clock_, 1s), KillMethod::freeze);
  EXPECT_EQ(tree_.read(path_ / "cgroup.freeze"), "0");
  EXPECT_EQ(tree_.read(path_ / "cgroup.kill"), "");  // not used
}

TEST_F(AV2Dir, FreezeTimeoutWritesZeroBackAndSaysSo) {
  auto dir = V2Dir::open(path_);  // events keep saying frozen 0
  auto start = clock_.now();
  try {
    dir.freeze(Deadline(clock_, 2s));
    FAIL() << "expected a timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::timeout);
  }
  EXPECT_EQ(tree_.read(path_ / "cgroup.freeze"), "0");
  EXPECT_GE(clock_.now() - start, 2s);
}

TEST_F(AV2Dir, CgroupKillMethodIsUnsupportedWithoutTheFile) {
  fs::remove(path_ / "cgroup.kill");
  auto dir = V2Dir::open(path_);
  try {
    dir.kill_all(Deadline(clock_, 1s), KillMethod::cgroup_kill);
    FAIL() << "expected unsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
}

TEST_F(AV2Dir, WaitEmptyTimesOutNamingTheFolder) {
  tree_.write(path_ / "cgroup.events", "populated 1\nfrozen 0\n");
  auto dir = V2Dir::open(path_);
  try {
    dir.wait_empty(Deadline(clock_, 1s));
    FAIL() << "expected a timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::timeout);
    EXPECT_NE(std::string(e.what()).find(path_.string()), std::string::npos);
  }
}

TEST_F(AV2Dir, ReadsStats) {
  tree_.write(path_ / "cpu.stat", "usage_usec 300\nuser_usec 200\nsystem_usec 100\n");
  tree_.write(path_ / "memory.current", "4096\n");
  tree_.write(path_ / "memory.peak", "8192\n");
  tree_.write(path_ / "memory.events", "low 0\nmax 3\noom 1\noom_kill 2\n");
  auto s = V2Dir::open(path_).stats();
  EXPECT_EQ(s.cpu_user, 200us);
  EXPECT_EQ(s.cpu_system, 100us);
  EXPECT_EQ(s.memory_current, 4096u);
  EXPECT_EQ(s.memory_peak, 8192u);
  EXPECT_EQ(s.pids_current, 0u);
  EXPECT_EQ(s.oom_kills, 2u);
}

TEST_F(AV2Dir, ReadsPidsFromProcs) {
  tree_.write(path_ / "cgroup.procs", "12\n345\n");
  EXPECT_EQ(V2Dir::open(path_).pids(), (std::vector<pid_t>{12, 345}));
}

TEST_F(AV2Dir, OpeningAMissingFolderIsNotFound) {
  try {
    V2Dir::open(path_ / "nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
}

}  // namespace
}  // namespace runscope::cgroup
