#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "cgroup/util.hpp"
#include "cgroup/v1_backend.hpp"
#include "common/error.hpp"
#include "support/fake_cgroup_tree.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A legacy host like CentOS 7: cpu and cpuacct co-mounted; we run in a memory cgroup of our own.
class AV1Backend : public ::testing::Test {
 protected:
  void SetUp() override {
    cpuset_ = tree_.add_v1("cpuset", {"cpuset"});
    cpu_ = tree_.add_v1("cpu,cpuacct", {"cpu", "cpuacct"});
    memory_ = tree_.add_v1("memory", {"memory"});
    pids_ = tree_.add_v1("pids", {"pids"});
    freezer_ = tree_.add_v1("freezer", {"freezer"});
    tree_.make_cgroup(memory_ / "process_api/abc");
  }

  std::unique_ptr<Backend> backend(const std::string& parent) {
    CgroupPaths own = {{"cpuset", "/"}, {"cpu", "/"}, {"cpuacct", "/"}, {"memory", "/process_api/abc"},
                       {"pids", "/"}, {"freezer", "/"}};
    return make_v1_backend(V1Options{tree_.layout(), own, parent, &clock_, tree_.ops(), tree_.root() / "proc"});
  }

  testing::FakeCgroupTree tree_;
  FakeClock clock_;
  fs::path cpuset_, cpu_, memory_, pids_, freezer_;
  TaskId id_{"alloc1", "web"};
};

Limits in_reserved() {
  Limits limits;
  limits.partition = CpuPartition::reserved;
  return limits;
}

TEST_F(AV1Backend, MakesTheTaskFolderInEveryHierarchyItUses) {
  auto task = backend("runscope-test")->create(id_, Limits{});
  for (const auto& mount : {cpu_, pids_, freezer_}) {
    EXPECT_TRUE(tree_.exists(mount / "runscope-test/alloc1-web")) << mount;
  }
  EXPECT_TRUE(tree_.exists(memory_ / "process_api/abc/runscope-test/alloc1-web"));
  EXPECT_FALSE(tree_.exists(cpu_ / "runscope-test/alloc1-web/alloc1-web"));  // co-mounted: one folder
  // No CPUs of its own and no partition: the task stays in the cpuset cgroup it was spawned from.
  EXPECT_FALSE(tree_.exists(cpuset_ / "runscope-test"));
  EXPECT_EQ(task->location().find(cpuset_.string()), std::string::npos) << task->location();
}

TEST_F(AV1Backend, MakesACpusetFolderOnlyForATaskWithCpusOfItsOwn) {
  Limits limits;
  limits.cpuset = CpuSet::parse("1");
  auto task = backend("runscope-test")->create(id_, limits);
  EXPECT_EQ(tree_.read(cpuset_ / "runscope-test/alloc1-web/cpuset.cpus"), "1");
  EXPECT_NE(task->location().find((cpuset_ / "runscope-test/alloc1-web").string()), std::string::npos);
  task->destroy(Deadline(clock_, 1s));
  EXPECT_FALSE(tree_.exists(cpuset_ / "runscope-test/alloc1-web"));
}

TEST_F(AV1Backend, NestsMemoryBeneathOurOwnMemoryCgroupEvenForAnAbsoluteParent) {
  auto task = backend("/runscope")->create(id_, Limits{});
  EXPECT_TRUE(tree_.exists(cpu_ / "runscope/alloc1-web"));
  EXPECT_TRUE(tree_.exists(memory_ / "process_api/abc/runscope/alloc1-web"));
  EXPECT_FALSE(tree_.exists(memory_ / "runscope"));
}

// A reserved task made before the reconciler set its CPUs starts with its parent's.
TEST_F(AV1Backend, CopiesCpusAndMemsDownBeforeAnyProcessJoins) {
  auto task = backend("runscope-test")->create(id_, in_reserved());
  EXPECT_EQ(tree_.read(cpuset_ / "runscope-test/cpuset.cpus"), "0-3");
  EXPECT_EQ(tree_.read(cpuset_ / "runscope-test/reserved/cpuset.cpus"), "0-3");
  EXPECT_EQ(tree_.read(cpuset_ / "runscope-test/reserved/alloc1-web/cpuset.cpus"), "0-3");
  EXPECT_EQ(tree_.read(cpuset_ / "runscope-test/reserved/alloc1-web/cpuset.mems"), "0");
}

TEST_F(AV1Backend, WritesLimitsMappingCpuWeightToShares) {
  Limits limits;
  limits.memory_max = 32 << 20;
  limits.cpu_weight = 100;
  limits.pids_max = 64;
  limits.cpuset = CpuSet::parse("1");
  auto task = backend("rt")->create(id_, limits);
  EXPECT_EQ(tree_.read(memory_ / "process_api/abc/rt/alloc1-web/memory.limit_in_bytes"), "33554432");
  EXPECT_EQ(tree_.read(cpu_ / "rt/alloc1-web/cpu.shares"), "1024");
  EXPECT_EQ(tree_.read(pids_ / "rt/alloc1-web/pids.max"), "64");
  EXPECT_EQ(tree_.read(cpuset_ / "rt/alloc1-web/cpuset.cpus"), "1");
}

TEST(CpuWeightToShares, FollowsSystemdsMapping) {
  EXPECT_EQ(cg_weight_to_shares(1), 10u);
  EXPECT_EQ(cg_weight_to_shares(100), 1024u);
  EXPECT_EQ(cg_weight_to_shares(10000), 102400u);
  EXPECT_THROW(cg_weight_to_shares(0), Error);
  EXPECT_THROW(cg_weight_to_shares(10001), Error);
}

TEST(AV1Freezer, RetriesAFreezerStuckInFreezingAndThawsEvery50thTry) {
  FakeClock clock;
  std::vector<std::string> writes;
  int reads = 0;
  bool frozen = cg_freezer_freeze([&](const char* s) { writes.emplace_back(s); },
                                  [&] { return ++reads < 120 ? "FREEZING\n" : "FROZEN\n"; },
                                  Deadline(clock, 10s));
  EXPECT_TRUE(frozen);
  EXPECT_EQ(reads, 120);
  EXPECT_EQ(std::count(writes.begin(), writes.end(), "THAWED"), 2);  // before tries 50 and 100
  ASSERT_EQ(writes.size(), 122u);
  EXPECT_EQ(writes[49], "THAWED");  // tries 1..49 wrote FROZEN, then try 50 thaws first
  EXPECT_EQ(writes[50], "FROZEN");
  EXPECT_EQ(writes[100], "THAWED");
  EXPECT_EQ(writes.back(), "FROZEN");
}

TEST(AV1Freezer, GivesUpAfterTheDeadline) {
  FakeClock clock;
  int reads = 0;
  auto start = clock.now();
  bool frozen = cg_freezer_freeze([](const char*) {}, [&] { ++reads; return std::string("FREEZING"); },
                                  Deadline(clock, 100ms));
  EXPECT_FALSE(frozen);
  EXPECT_GE(clock.now() - start, 100ms);
  EXPECT_LT(reads, 1000);
}

TEST_F(AV1Backend, RefusesALimitWhoseControllerIsNotMountedAndMakesNothing) {
  auto layout = tree_.layout();
  layout.v1_mounts.erase("pids");
  auto backend = make_v1_backend(V1Options{layout, {}, "rt", &clock_, tree_.ops(), tree_.root() / "proc"});
  Limits limits;
  limits.pids_max = 10;
  try {
    backend->create(id_, limits);
    FAIL() << "expected unsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("'pids'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(tree_.exists(cpuset_ / "rt"));
  EXPECT_FALSE(tree_.exists(freezer_ / "rt"));
}

TEST_F(AV1Backend, RollsBackEverythingWhenALimitWriteFails) {
  Limits limits;
  limits.cpu_weight = 20000;  // out of range: fails after the folders exist
  EXPECT_THROW(backend("rt")->create(id_, limits), Error);
  for (const auto& mount : {cpuset_, cpu_, pids_, freezer_}) EXPECT_FALSE(tree_.exists(mount / "rt")) << mount;
  EXPECT_FALSE(tree_.exists(memory_ / "process_api/abc/rt"));
  EXPECT_TRUE(tree_.exists(memory_ / "process_api/abc"));  // never ours to remove
}

TEST_F(AV1Backend, SharedPartitionTasksJoinTheOneSharedCpuset) {
  Limits limits;
  limits.partition = CpuPartition::shared;
  auto task = backend("rt")->create(id_, limits);
  EXPECT_TRUE(tree_.exists(cpuset_ / "rt/shared"));
  EXPECT_FALSE(tree_.exists(cpuset_ / "rt/shared/alloc1-web"));
  EXPECT_EQ(tree_.read(cpuset_ / "rt/shared/cpuset.cpus"), "0-3");
  EXPECT_TRUE(tree_.exists(freezer_ / "rt/alloc1-web"));
  tree_.write(cpuset_ / "rt/shared/cgroup.procs", "999999\n");  // another task's process
  EXPECT_TRUE(task->pids().empty());
  task->destroy(Deadline(clock_, 1s));
  EXPECT_TRUE(tree_.exists(cpuset_ / "rt/shared"));
  EXPECT_FALSE(tree_.exists(freezer_ / "rt/alloc1-web"));
}

TEST_F(AV1Backend, ReservedPartitionTasksGetTheirOwnCpusetBelowReserved) {
  Limits limits;
  limits.partition = CpuPartition::reserved;
  limits.cpuset = CpuSet::parse("2-3");
  auto task = backend("rt")->create(id_, limits);
  EXPECT_EQ(tree_.read(cpuset_ / "rt/reserved/alloc1-web/cpuset.cpus"), "2-3");
  EXPECT_TRUE(tree_.exists(cpu_ / "rt/alloc1-web"));
  task->destroy(Deadline(clock_, 1s));
  EXPECT_TRUE(tree_.exists(cpuset_ / "rt/reserved"));
  EXPECT_FALSE(tree_.exists(cpuset_ / "rt/reserved/alloc1-web"));
}

// Plays the kernel's part once a SIGKILL lands: the first wait empties the task's cgroup.procs.
class ReapingClock final : public Clock {
 public:
  explicit ReapingClock(std::vector<fs::path> procs) : procs_(std::move(procs)) {}
  time_point now() const override { return fake_.now(); }
  void sleep_for(std::chrono::nanoseconds d) override {
    for (const auto& file : procs_) std::ofstream(file, std::ios::trunc);
    fake_.sleep_for(d);
  }

 private:
  FakeClock fake_;
  std::vector<fs::path> procs_;
};

TEST_F(AV1Backend, KillStopsForksFreezesAndEndsThawedWhenAProcessIsThere) {
  auto task = backend("rt")->create(id_, Limits{});
  const fs::path procs = freezer_ / "rt/alloc1-web/cgroup.procs";
  tree_.write(procs, "999999999\n");  // a pid no signal can reach; the clock plays its death
  ReapingClock reaper({procs});
  task->kill_all(Deadline(reaper, 1s), KillMethod::automatic);
  EXPECT_EQ(tree_.read(pids_ / "rt/alloc1-web/pids.max"), "0");
  EXPECT_EQ(tree_.read(freezer_ / "rt/alloc1-web/freezer.state"), "THAWED");
  EXPECT_EQ(tree_.read(procs), "");
}

TEST_F(AV1Backend, SkipsTheFreezeAndKillWhenEveryHierarchyIsAlreadyEmpty) {
  auto task = backend("rt")->create(id_, Limits{});
  tree_.write(freezer_ / "rt/alloc1-web/freezer.state", "untouched");
  task->kill_all(Deadline(clock_, 1s), KillMethod::automatic);
  EXPECT_EQ(tree_.read(pids_ / "rt/alloc1-web/pids.max"), "max\n");
  EXPECT_EQ(tree_.read(freezer_ / "rt/alloc1-web/freezer.state"), "untouched");
}

TEST_F(AV1Backend, RunsTheFullKillWhenOnlyOneHierarchyStillHoldsAProcess) {
  auto task = backend("rt")->create(id_, Limits{});
  const fs::path procs = memory_ / "process_api/abc/rt/alloc1-web/cgroup.procs";
  tree_.write(procs, "999999999\n");
  ReapingClock reaper({procs});
  task->kill_all(Deadline(reaper, 1s), KillMethod::automatic);
  EXPECT_EQ(tree_.read(pids_ / "rt/alloc1-web/pids.max"), "0");
}

// rmdir answering EBUSY means something joined after the empty check: it is killed, then removed.
TEST_F(AV1Backend, DestroyKillsWhatJoinedAfterTheEmptyCheck) {
  auto ops = tree_.ops();
  const fs::path procs = freezer_ / "rt/alloc1-web/cgroup.procs";
  int busy = 1;
  std::string pids_max_at_retry;
  auto real_remove = ops.remove_dir;
  ops.remove_dir = [&](const fs::path& dir) {
    if (dir == freezer_ / "rt/alloc1-web" && busy-- > 0) {
      tree_.write(procs, "999999999\n");
      return EBUSY;
    }
    if (dir == freezer_ / "rt/alloc1-web") pids_max_at_retry = tree_.read(pids_ / "rt/alloc1-web/pids.max");
    return real_remove(dir);
  };
  CgroupPaths own = {{"cpuset", "/"}, {"cpu", "/"}, {"cpuacct", "/"}, {"memory", "/process_api/abc"},
                     {"pids", "/"}, {"freezer", "/"}};
  ReapingClock reaper({procs});
  auto b = make_v1_backend(V1Options{tree_.layout(), own, "rt", &reaper, ops, tree_.root() / "proc"});
  auto task = b->create(id_, Limits{});
  task->destroy(Deadline(reaper, 1s));
  EXPECT_EQ(pids_max_at_retry, "0");
  EXPECT_FALSE(tree_.exists(freezer_ / "rt/alloc1-web"));
}

TEST_F(AV1Backend, ReusesTheParentsCpusetUntilTheParentIsMadeAgain) {
  auto b = backend("rt");
  const Limits reserved = in_reserved();
  b->create(TaskId("alloc1", "a"), reserved)->destroy(Deadline(clock_, 1s));
  auto second = b->create(TaskId("alloc1", "b"), reserved);
  EXPECT_EQ(tree_.read(cpuset_ / "rt/reserved/alloc1-b/cpuset.cpus"), "0-3");
  second->destroy(Deadline(clock_, 1s));
  fs::remove_all(cpuset_ / "rt");  // the parent is gone (e.g. an operator removed it): made again, read again
  tree_.write(cpuset_ / "cpuset.cpus", "2\n");
  auto third = b->create(TaskId("alloc1", "c"), reserved);
  EXPECT_EQ(tree_.read(cpuset_ / "rt/reserved/alloc1-c/cpuset.cpus"), "2");
}

TEST_F(AV1Backend, HasNoCgroupKill) {
  auto task = backend("rt")->create(id_, Limits{});
  try {
    task->kill_all(Deadline(clock_, 1s), KillMethod::cgroup_kill);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  }
}

TEST_F(AV1Backend, KillTimesOutNamingWhatIsLeftAndStillThaws) {
  auto task = backend("rt")->create(id_, Limits{});
  tree_.write(freezer_ / "rt/alloc1-web/cgroup.procs", "999999999\n");  // a pid no signal can reach
  try {
    task->kill_all(Deadline(clock_, 2s), KillMethod::automatic);
    FAIL() << "expected a timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::timeout);
  }
  EXPECT_EQ(tree_.read(freezer_ / "rt/alloc1-web/freezer.state"), "THAWED");
  tree_.write(freezer_ / "rt/alloc1-web/cgroup.procs", "");
}

TEST_F(AV1Backend, DestroyRemovesEveryFolderButTheParents) {
  auto task = backend("rt")->create(id_, Limits{});
  task->destroy(Deadline(clock_, 1s));
  for (const auto& mount : {cpu_, pids_, freezer_}) {
    EXPECT_FALSE(tree_.exists(mount / "rt/alloc1-web")) << mount;
    EXPECT_TRUE(tree_.exists(mount / "rt")) << mount;
  }
  EXPECT_FALSE(tree_.exists(cpuset_ / "rt"));  // never made: the task had no CPUs of its own
}

TEST_F(AV1Backend, ReadsStats) {
  auto task = backend("rt")->create(id_, Limits{});
  auto mem = memory_ / "process_api/abc/rt/alloc1-web";
  tree_.write(cpu_ / "rt/alloc1-web/cpuacct.stat", "user 5\nsystem 2\n");
  tree_.write(mem / "memory.usage_in_bytes", "4096\n");
  tree_.write(mem / "memory.max_usage_in_bytes", "8192\n");
  tree_.write(mem / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  tree_.write(pids_ / "rt/alloc1-web/pids.current", "7\n");
  auto s = task->stats();
  auto tick = std::chrono::microseconds(1000000 / ::sysconf(_SC_CLK_TCK));
  EXPECT_EQ(s.cpu_user, 5 * tick);
  EXPECT_EQ(s.cpu_system, 2 * tick);
  EXPECT_EQ(s.memory_current, 4096u);
  EXPECT_EQ(s.memory_peak, 8192u);
  EXPECT_EQ(s.pids_current, 7u);
  EXPECT_EQ(s.oom_kills, 3u);
}

TEST_F(AV1Backend, PlaceChecksTheKernelsViewOfThePid) {
  auto task = backend("rt")->create(id_, Limits{});
  fs::create_directories(tree_.root() / "proc/4242");
  tree_.write(tree_.root() / "proc/4242/cgroup",
              "6:freezer:/rt/alloc1-web\n5:pids:/rt/alloc1-web\n4:memory:/process_api/abc/rt/alloc1-web\n"
              "3:cpuset:/\n2:cpu,cpuacct:/\n");  // cpu never moved
  try {
    task->place(4242);
    FAIL() << "expected the check to fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu:/"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tree_.read(freezer_ / "rt/alloc1-web/cgroup.procs"), "4242");
  for (const auto& dir : {cpu_, pids_, freezer_}) tree_.write(dir / "rt/alloc1-web/cgroup.procs", "");
  tree_.write(memory_ / "process_api/abc/rt/alloc1-web/cgroup.procs", "");
}

}  // namespace
}  // namespace runscope::cgroup
