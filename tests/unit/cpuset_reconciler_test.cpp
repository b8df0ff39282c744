#include "cpuset/reconciler.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "cpuset/cpusets.hpp"

namespace runscope::cpuset {
namespace {

using ::testing::HasSubstr;

TaskId task(int i) { return TaskId("alloc" + std::to_string(i), "t"); }

// An in-memory backend that enforces the kernel's rules, so ordering mistakes fail loudly:
// v1's subset rule (a task inside the reserved partition; the partition never below a task) and
// "never empty". Counts writes per target.
class StrictApplier final : public Applier {
 public:
  std::string name() const override { return "strict fake"; }
  void prepare(const CpuSet&) override { ++prepares; }
  std::optional<CpuSet> read(const Target& t) override {
    if (t.kind == Target::Kind::shared) return shared;
    if (t.kind == Target::Kind::reserved) return reserved;
    auto it = tasks.find(*t.task);
    if (it == tasks.end()) return std::nullopt;
    return it->second;
  }
  void write(const Target& t, const CpuSet& cpus) override {
    if (fail_writes) throw Error(ErrorKind::system, "write failed on purpose");
    if (cpus.empty()) throw Error(ErrorKind::invalid_argument, "empty write to " + t.describe());
    ++writes;
    log.push_back(t.describe() + "=" + cpus.to_string());
    if (t.kind == Target::Kind::shared) {
      shared = cpus;
    } else if (t.kind == Target::Kind::reserved) {
      for (const auto& [id, mine] : tasks)
        if (!mine.empty() && !mine.is_subset_of(cpus)) throw Error(ErrorKind::system, "EBUSY: shrank below a task");
      reserved = cpus;
    } else {
      if (!cpus.is_subset_of(reserved)) throw Error(ErrorKind::system, "EINVAL: task outside the partition");
      tasks[*t.task] = cpus;
    }
  }

  CpuSet shared, reserved;
  std::map<TaskId, CpuSet> tasks;  // present = the backend made its cgroup
  int writes = 0, prepares = 0;
  bool fail_writes = false;
  std::vector<std::string> log;
};

DesiredState state(const char* shared, const char* reserved, std::map<TaskId, CpuSet> tasks = {}) {
  return DesiredState{CpuSet::parse(shared), CpuSet::parse(reserved), std::move(tasks)};
}

TEST(AReconciler, WritesEverythingAtFirstStartAndNothingOnceItMatches) {
  StrictApplier fake;
  Reconciler r(fake);
  r.start(state("0-3", "0-3"));
  EXPECT_EQ(fake.prepares, 1);
  EXPECT_EQ(fake.writes, 2);
  r.reconcile_all();
  r.start(state("0-3", "0-3"));  // a restart
  EXPECT_EQ(fake.writes, 2) << "matching state was rewritten";
  EXPECT_EQ(r.counts().writes, 2u);
  EXPECT_EQ(r.counts().reads, 6u);
}

TEST(AReconciler, GrowsTheReservedPartitionBeforeATaskAndShrinksItAfter) {
  StrictApplier fake;
  fake.shared = CpuSet::parse("0-1");
  fake.reserved = CpuSet::parse("0-1");
  fake.tasks[task(1)] = CpuSet::parse("1");
  Reconciler r(fake);
  // After a restart with another configuration: the task moves to 3, the partition to 2-3.
  r.start(state("2", "2-3", {{task(1), CpuSet::parse("3")}}));
  EXPECT_EQ(fake.log, (std::vector<std::string>{"reserved partition=0-3", "shared partition=2",
                                                "task alloc1/t=3", "reserved partition=2-3"}));
}

TEST(AReconciler, ChangeTouchesOnlyThePartitionsAndTheTaskConcerned) {
  StrictApplier fake;
  Reconciler r(fake);
  std::map<TaskId, CpuSet> tasks;
  for (int i = 0; i < 50; ++i) tasks[task(i)] = CpuSet::parse(std::to_string(i + 10));
  for (auto& [id, cpus] : tasks) fake.tasks[id] = {};
  r.start(DesiredState{CpuSet::parse("0-9"), CpuSet::parse("0-63"), tasks});
  auto reads = r.counts().reads;
  auto writes = r.counts().writes;
  auto next = r.desired();
  next.tasks[task(99)] = CpuSet::parse("9");
  next.shared = CpuSet::parse("0-8");
  fake.tasks[task(99)] = {};
  r.change(next);
  EXPECT_EQ(r.counts().writes - writes, 2u);  // shared + the task
  EXPECT_EQ(r.counts().reads - reads, 3u);    // reserved, shared, the task: not the 50 others
}

TEST(AReconciler, SkipsATaskWhoseCgroupDoesNotExistYet) {
  StrictApplier fake;
  Reconciler r(fake);
  r.start(state("0-2", "0-3"));
  r.change(state("0-1", "0-3", {{task(1), CpuSet::parse("2-3")}}));
  EXPECT_EQ(fake.tasks.count(task(1)), 0u);
  fake.tasks[task(1)] = {};  // the backend made it without a cpuset
  r.reconcile_all();
  EXPECT_EQ(fake.tasks[task(1)].to_string(), "2-3");
}

TEST(AReconciler, NeverWritesAnEmptySharedPartition) {
  StrictApplier fake;
  Reconciler r(fake);
  r.start(state("0-1", "0-1"));
  r.change(state("", "0-1", {{task(1), CpuSet::parse("0-1")}}));
  EXPECT_EQ(fake.shared.to_string(), "0-1");
}

TEST(AReconciler, PutsBackACpusetChangedByHand) {
  StrictApplier fake;
  fake.tasks[task(1)] = {};
  Reconciler r(fake);
  r.start(state("0-1", "0-3", {{task(1), CpuSet::parse("2-3")}}));
  fake.shared = CpuSet::parse("0-3");
  fake.tasks[task(1)] = CpuSet::parse("0");
  auto writes = fake.writes;
  r.reconcile_all();
  EXPECT_EQ(fake.writes - writes, 2);
  EXPECT_EQ(fake.shared.to_string(), "0-1");
  EXPECT_EQ(fake.tasks[task(1)].to_string(), "2-3");
}

TEST(AReconciler, RemakesAPartitionThatVanished) {
  class Vanishing final : public Applier {
   public:
    std::string name() const override { return "vanishing"; }
    void prepare(const CpuSet&) override { shared = CpuSet(); }
    std::optional<CpuSet> read(const Target& t) override {
      if (t.kind == Target::Kind::shared) return shared;
      return CpuSet::parse("0-3");
    }
    void write(const Target& t, const CpuSet& cpus) override {
      if (t.kind == Target::Kind::shared) shared = cpus;
    }
    std::optional<CpuSet> shared;
  } fake;
  Reconciler r(fake);
  r.start(state("0-3", "0-3"));
  fake.shared.reset();
  r.reconcile_all();
  EXPECT_EQ(fake.shared->to_string(), "0-3");
}

TEST(AReconciler, SaysWhichPartitionIsMissing) {
  class Missing final : public Applier {
    std::string name() const override { return "nothing"; }
    void prepare(const CpuSet&) override {}
    std::optional<CpuSet> read(const Target&) override { return std::nullopt; }
    void write(const Target&, const CpuSet&) override {}
  } missing;
  Reconciler r(missing);
  try {
    r.start(state("0", "0"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("reserved partition is missing"));
  }
}

TEST(TheCpusets, KeepTheBackendEqualToThePlanOverRandomChanges) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    StrictApplier fake;
    FakeClock clock;
    Cpusets c(Planner(Topology::synthetic(2, 4, 2), CpuSet::parse("0-15"), CpuSet::parse("0"), 2), fake, clock,
              std::chrono::seconds(30));
    c.start();
    std::mt19937 rng(seed);
    std::vector<int> held;
    for (int step = 0; step < 100; ++step) {
      if (rng() % 2 == 0) {
        int id = step;
        try {
          c.reserve(task(id), 1 + rng() % 4);
          fake.tasks[task(id)] = c.desired().tasks.at(task(id));  // the backend makes it with its CPUs
          held.push_back(id);
        } catch (const Error& e) {
          ASSERT_EQ(e.kind(), ErrorKind::resources) << e.what();
        }
      } else if (!held.empty()) {
        std::size_t i = rng() % held.size();
        fake.tasks.erase(task(held[i]));  // the task is gone before its cores return
        c.release(task(held[i]));
        held.erase(held.begin() + static_cast<long>(i));
      }
      auto d = c.desired();
      if (!d.shared.empty()) {  // an empty pool (no shared task runs) is never written
        ASSERT_EQ(fake.shared.to_string(), d.shared.to_string());
      }
      ASSERT_EQ(fake.reserved.to_string(), d.reserved.to_string());
      for (const auto& [id, cpus] : d.tasks) ASSERT_EQ(fake.tasks.at(id).to_string(), cpus.to_string());
    }
  }
}

TEST(TheCpusets, RollBackAReservationTheBackendRefused) {
  StrictApplier fake;
  FakeClock clock;
  Cpusets c(Planner(Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1), fake, clock, std::chrono::seconds(30));
  c.start();
  fake.fail_writes = true;
  EXPECT_THROW(c.reserve(task(1), 2), Error);
  EXPECT_TRUE(c.desired().tasks.empty());
  EXPECT_EQ(c.shared_pool().to_string(), "0-3");
}

TEST(TheCpusets, ReconcileEverythingOncePerInterval) {
  StrictApplier fake;
  FakeClock clock;
  Cpusets c(Planner(Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1), fake, clock, std::chrono::seconds(30));
  c.start();
  EXPECT_FALSE(c.tick());
  fake.shared = CpuSet::parse("1");  // drift
  clock.advance(std::chrono::seconds(29));
  EXPECT_FALSE(c.tick());
  EXPECT_EQ(fake.shared.to_string(), "1");
  clock.advance(std::chrono::seconds(1));
  EXPECT_TRUE(c.tick());
  EXPECT_EQ(fake.shared.to_string(), "0-3");
  EXPECT_FALSE(c.tick());
}

// min_shared_cores 0 (the old rule): every CPU may be reserved while no shared task runs.
TEST(TheCpusets, RefuseASharedTaskWhenThePoolIsBelowTheMinimum) {
  StrictApplier fake;
  FakeClock clock;
  Cpusets c(Planner(Topology::synthetic(1, 2, 1), CpuSet::parse("0-1"), {}, 0), fake, clock, std::chrono::seconds(30));
  c.start();
  c.reserve(task(1), 2);
  EXPECT_THROW(c.add_shared_task(), Error);
  c.release(task(1));
  EXPECT_NO_THROW(c.add_shared_task());
  EXPECT_THROW(c.reserve(task(2), 2), Error);
}

TEST(TheCpusets, StayConsistentUnderConcurrentReservesAndReleases) {
  StrictApplier fake;
  FakeClock clock;
  Cpusets c(Planner(Topology::synthetic(2, 8, 2), CpuSet::parse("0-31"), {}, 1), fake, clock, std::chrono::seconds(30));
  c.start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&c, t] {
      for (int i = 0; i < 50; ++i) {
        TaskId id("thread" + std::to_string(t), "task" + std::to_string(i));
        try {
          c.reserve(id, 1 + static_cast<unsigned>(i % 3));
        } catch (const Error&) {
          continue;
        }
        c.tick();
        c.release(id);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_TRUE(c.desired().tasks.empty());
  EXPECT_EQ(c.shared_pool().to_string(), "0-31");
  EXPECT_EQ(fake.shared.to_string(), "0-31");
}

config::CpusetConfig cpuset_config(const char* reservable, const char* reserved, unsigned min_shared) {
  config::CpusetConfig c;
  c.reservable_cores = CpuSet::parse(reservable);
  c.reserved_cores = CpuSet::parse(reserved);
  c.min_shared_cores = min_shared;
  return c;
}

TEST(TheCpusets, ReplanWithNewReservedCoresKeepingEveryReservation) {
  StrictApplier fake;
  FakeClock clock;
  Cpusets c(Planner(Topology::synthetic(1, 8, 1), CpuSet::parse("0-7"), {}, 1), fake, clock, std::chrono::seconds(30));
  c.start();
  auto mine = c.reserve(task(1), 2);
  c.add_shared_task();
  auto next = cpuset_config("0-7", (mine & CpuSet::parse("0")).empty() ? "0" : "7", 2);
  c.replan(next);
  EXPECT_EQ(c.desired().tasks.at(task(1)), mine);
  EXPECT_EQ(fake.reserved, c.desired().reserved);
  EXPECT_EQ(fake.shared, c.shared_pool());
  EXPECT_EQ(c.shared_pool().size(), 5u);  // 8 - 1 kept for the system - 2 reserved
  EXPECT_THROW(c.reserve(task(2), 4), Error);  // min_shared 2 of the 5 stay shared now
}

TEST(TheCpusets, RefuseAReplanThatCannotHoldTheCurrentReservationsAndKeepTheOldPlan) {
  StrictApplier fake;
  FakeClock clock;
  Cpusets c(Planner(Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1), fake, clock, std::chrono::seconds(30));
  c.start();
  auto mine = c.reserve(task(1), 2);
  c.add_shared_task();
  auto before = c.desired();
  try {
    c.replan(cpuset_config("0-3", mine.to_string().c_str(), 1));  // the system wants the task's CPUs
    ADD_FAILURE() << "accepted reserved cores a task holds";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(task(1).display()));
  }
  EXPECT_THROW(c.replan(cpuset_config("0-3", "", 3)), Error);  // 2 left for shared tasks, 3 asked for
  EXPECT_EQ(c.desired().tasks, before.tasks);
  EXPECT_EQ(c.shared_pool(), before.shared);
  EXPECT_EQ(fake.shared, before.shared);
}

TEST(TheCpusets, TakeANewReconcileIntervalOnReplan) {
  StrictApplier fake;
  FakeClock clock;
  Cpusets c(Planner(Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1), fake, clock, std::chrono::seconds(30));
  c.start();
  auto next = cpuset_config("0-3", "", 1);
  next.reconcile_interval = std::chrono::seconds(5);
  c.replan(next);
  clock.advance(std::chrono::seconds(4));
  EXPECT_FALSE(c.tick());
  clock.advance(std::chrono::seconds(1));
  EXPECT_TRUE(c.tick());
}

}  // namespace
}  // namespace runscope::cpuset
