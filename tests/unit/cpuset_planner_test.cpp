#include "cpuset/planner.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "common/error.hpp"

namespace runscope::cpuset {
namespace {

using ::testing::HasSubstr;

TaskId task(int i) { return TaskId("alloc" + std::to_string(i), "t"); }

// The domains (node x package) of a topology, and the whole free cores in a set.
std::map<std::pair<unsigned, unsigned>, CpuSet> domains_of(const Planner& p, const CpuSet& cpus) {
  std::map<std::pair<unsigned, unsigned>, CpuSet> out;
  for (unsigned cpu : cpus.cpus()) {
    auto* info = p.topology().find(cpu);
    out[{info->node, info->package}].add(cpu);
  }
  return out;
}

CpuSet core_of(const Planner& p, unsigned cpu) { return p.topology().find(cpu)->siblings & p.usable(); }

std::size_t whole_capacity(const Planner& p, const CpuSet& domain, const CpuSet& free) {
  std::size_t n = 0;
  for (unsigned cpu : domain.cpus())
    if (core_of(p, cpu).is_subset_of(free)) ++n;
  return n;
}

void check_invariants(const Planner& p, const CpuSet& reservable, const CpuSet& system, unsigned min_shared) {
  CpuSet reserved;
  for (const auto& [id, cpus] : p.reservations()) {
    ASSERT_FALSE(cpus.empty());
    ASSERT_FALSE(cpus.intersects(reserved)) << "a core in two reservations: " << cpus.to_string();
    reserved |= cpus;
  }
  auto d = p.desired();
  ASSERT_FALSE(d.shared.intersects(reserved));
  ASSERT_FALSE(d.shared.intersects(system));
  ASSERT_FALSE(reserved.intersects(system));
  ASSERT_EQ(d.shared | reserved | system, reservable);
  ASSERT_EQ(d.reserved, reservable - system);
  ASSERT_GE(d.shared.size(), min_shared) << "a reservation took the shared pool below min_shared_cores";
  if (p.shared_tasks() > 0) {
    ASSERT_GE(d.shared.size(), 1u);
  }
}

// Checks one reservation against the preferences: one domain whenever one could hold it, and
// whole cores (at most one split core on SMT-2) whenever that domain had the whole cores.
void check_preferences(const Planner& p, const CpuSet& free_before, const CpuSet& got, unsigned n) {
  ASSERT_EQ(got.size(), n);
  ASSERT_TRUE(got.is_subset_of(free_before));
  auto before = domains_of(p, free_before);
  bool one_fits = false, one_fits_whole = false;
  for (const auto& [key, dom] : before) {
    one_fits |= dom.size() >= n;
    one_fits_whole |= whole_capacity(p, dom, free_before) >= n;
  }
  auto spans = domains_of(p, got);
  if (one_fits) {
    ASSERT_EQ(spans.size(), 1u) << got.to_string() << " spread though one domain fits " << n;
  }
  if (!one_fits_whole) return;
  const auto& chosen = spans.begin()->second;
  ASSERT_GE(whole_capacity(p, before.at(spans.begin()->first), free_before), n)
      << "picked a domain without enough whole cores: " << chosen.to_string();
  std::size_t split = 0;
  CpuSet seen;
  for (unsigned cpu : got.cpus()) {
    if (seen.contains(cpu)) continue;
    seen |= core_of(p, cpu);
    if (!core_of(p, cpu).is_subset_of(got)) ++split;
  }
  ASSERT_LE(split, 1u) << got.to_string() << " splits cores though whole cores were free";
}

struct Machine {
  const char* name;
  Topology topology;
  CpuSet reservable;
  CpuSet system;
  unsigned min_shared;
};

std::vector<Machine> machines() {
  return {
      {"1 socket x 2 threads", Topology::synthetic(1, 1, 2), CpuSet::parse("0-1"), {}, 1},
      {"2 sockets x 8 cores x 2 threads", Topology::synthetic(2, 8, 2), CpuSet::parse("0-31"), {}, 1},
      {"2x8x2 with system-reserved 0,16 and min 2", Topology::synthetic(2, 8, 2), CpuSet::parse("0-31"),
       CpuSet::parse("0,16"), 2},
      {"odd mask 0,2,5-7", Topology::synthetic(1, 4, 2, CpuSet::parse("0,2,5-7")), CpuSet::parse("0,2,5-7"), {}, 1},
      {"2x8x2 reservable 3-12,20-27", Topology::synthetic(2, 8, 2), CpuSet::parse("3-12,20-27"),
       CpuSet::parse("12"), 1},
      {"2x8x2 with min_shared 0 (the old rule)", Topology::synthetic(2, 8, 2), CpuSet::parse("0-31"), {}, 0},
  };
}

TEST(APlanner, KeepsEveryInvariantOverRandomReserveReleaseSequences) {
  for (const auto& m : machines()) {
    SCOPED_TRACE(m.name);
    for (unsigned seed = 1; seed <= 40; ++seed) {
      std::mt19937 rng(seed);
      Planner p(m.topology, m.reservable, m.system, m.min_shared);
      std::vector<int> held;
      int next = 0;
      for (int step = 0; step < 200; ++step) {
        int action = static_cast<int>(rng() % 10);
        if (action < 5) {
          unsigned n = 1 + rng() % 6;
          unsigned avail = p.available();
          CpuSet free = p.shared_pool();
          auto before = p.reservations();
          try {
            CpuSet got = p.reserve(task(next), n);
            ASSERT_LE(n, avail) << "granted beyond what was free";
            check_preferences(p, free, got, n);
            held.push_back(next++);
          } catch (const Error& e) {
            ASSERT_EQ(e.kind(), ErrorKind::resources);
            ASSERT_GT(n, avail) << "refused though " << avail << " were free";
            ASSERT_THAT(e.what(), HasSubstr("cannot reserve " + std::to_string(n) + " core"));
            ASSERT_THAT(e.what(), HasSubstr(": " + std::to_string(avail) + " free"));
            ASSERT_EQ(p.reservations(), before) << "a refusal changed the state";
          }
        } else if (action < 8 && !held.empty()) {
          std::size_t i = rng() % held.size();
          ASSERT_TRUE(p.release(task(held[i])));
          held.erase(held.begin() + static_cast<long>(i));
        } else if (action == 8) {
          try {
            p.add_shared_task();
          } catch (const Error& e) {
            ASSERT_LT(p.shared_pool().size(), std::max(m.min_shared, 1u));
          }
        } else {
          p.remove_shared_task();
        }
        check_invariants(p, m.reservable, m.system, m.min_shared);
      }
    }
  }
}

TEST(APlanner, TakesWholeCoresOfOneSocketFirst) {
  Planner p(Topology::synthetic(2, 8, 2), CpuSet::parse("0-31"), {}, 1);
  EXPECT_EQ(p.reserve(task(1), 4).to_string(), "0-1,16-17");
  EXPECT_EQ(p.reserve(task(2), 3).to_string(), "2-3,18");  // a whole core, then one thread
  EXPECT_EQ(p.reserve(task(3), 1).to_string(), "19");       // the split core's other thread first
}

TEST(APlanner, PrefersTheTightestSocketThatHoldsTheReservationInWholeCores) {
  Planner p(Topology::synthetic(2, 8, 2), CpuSet::parse("0-31"), {}, 1);
  p.reserve(task(1), 12);  // socket 0 keeps 2 whole cores
  auto got = p.reserve(task(2), 4);
  EXPECT_EQ(got.to_string(), "6-7,22-23");
  auto big = p.reserve(task(3), 8);  // only socket 1 can hold it
  for (unsigned cpu : big.cpus()) EXPECT_EQ(p.topology().find(cpu)->package, 1u);
}

TEST(APlanner, SpreadsOnlyWhenNoSocketCanHoldTheReservation) {
  Planner p(Topology::synthetic(2, 8, 2), CpuSet::parse("0-31"), {}, 1);
  auto got = p.reserve(task(1), 20);
  EXPECT_EQ(got.size(), 20u);
  EXPECT_EQ(domains_of(p, got).size(), 2u);
}

TEST(APlanner, RefusesWhenNotEnoughCoresAreFreeSayingHowMany) {
  Planner p(Topology::synthetic(1, 2, 2), CpuSet::parse("0-3"), CpuSet::parse("0"), 1);
  p.reserve(task(1), 2);
  try {
    p.reserve(task(2), 2);
    FAIL() << "over-reserved";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resources);
    EXPECT_THAT(e.what(), HasSubstr("cannot reserve 2 cores for alloc2/t: 0 free"));  // min_shared_cores 1 stays
  }
  EXPECT_EQ(p.reservations().size(), 1u);
}

// Issue 12: with no shared task running, a member reserved every core and root's next shared task
// had none. min_shared_cores now stays shared at all times.
TEST(APlanner, KeepsMinSharedCoresWhetherOrNotSharedTasksRun) {
  Planner p(Topology::synthetic(1, 1, 2), CpuSet::parse("0-1"), {}, 1);
  EXPECT_EQ(p.available(), 1u);
  EXPECT_EQ(p.reserve(task(1), 1).size(), 1u);
  try {
    p.reserve(task(2), 1);
    FAIL() << "took the last shared core";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resources);
    EXPECT_THAT(e.what(), HasSubstr("cannot reserve 1 core for alloc2/t: 0 free (1 in the shared pool, of which 1 "
                                    "always stay shared: min_shared_cores = 1, 0 shared tasks running)"));
  }
  EXPECT_NO_THROW(p.add_shared_task());  // the next shared task still has its core
  EXPECT_EQ(p.shared_pool().size(), 1u);
  EXPECT_THROW(p.reserve(task(2), 1), Error);
  p.remove_shared_task();
  EXPECT_THROW(p.reserve(task(2), 1), Error);
}

// min_shared_cores = 0 is the old rule: everything may be reserved while nobody shares, one CPU
// stays while shared tasks run (they are never left with none).
TEST(APlanner, WithMinSharedZeroKeepsOneCoreOnlyWhileSharedTasksRun) {
  Planner p(Topology::synthetic(1, 1, 2), CpuSet::parse("0-1"), {}, 0);
  p.add_shared_task();
  EXPECT_EQ(p.reserve(task(1), 1).size(), 1u);
  EXPECT_THROW(p.reserve(task(2), 1), Error);
  p.remove_shared_task();
  EXPECT_EQ(p.reserve(task(2), 1).size(), 1u);  // nobody shares now
  EXPECT_TRUE(p.shared_pool().empty());
  EXPECT_THROW(p.add_shared_task(), Error);  // and nobody can until a core comes back
  p.release(task(1));
  EXPECT_NO_THROW(p.add_shared_task());
}

TEST(APlanner, RejectsZeroDuplicateAndUnknownReleases) {
  Planner p(Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1);
  EXPECT_THROW(p.reserve(task(1), 0), Error);
  p.reserve(task(1), 1);
  try {
    p.reserve(task(1), 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
  }
  EXPECT_FALSE(p.release(task(9)));
}

TEST(APlanner, RestoresReservationsOnlyOntoFreeCpus) {
  Planner p(Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1);
  p.restore(task(1), CpuSet::parse("2"));
  EXPECT_EQ(p.shared_pool().to_string(), "0-1,3");
  EXPECT_THROW(p.restore(task(2), CpuSet::parse("2-3")), Error);
  EXPECT_THROW(p.restore(task(3), CpuSet::parse("7")), Error);
  EXPECT_EQ(p.reservations().size(), 1u);
}

TEST(APlanner, ValidatesItsConfigurationNamingTheKeys) {
  auto topo = Topology::synthetic(1, 4, 1);
  auto expect = [&](const CpuSet& reservable, const CpuSet& system, unsigned min, const char* text) {
    try {
      Planner p(topo, reservable, system, min);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::config);
      EXPECT_THAT(e.what(), HasSubstr(text));
    }
  };
  expect(CpuSet::parse("0-5"), {}, 1, "cpuset.reservable_cores \"0-5\": CPUs 4-5 are not online");
  expect({}, {}, 1, "cpuset.reservable_cores: no CPUs");
  expect(CpuSet::parse("0-1"), CpuSet::parse("2"), 1, "cpuset.reserved_cores \"2\" is not inside");
  expect(CpuSet::parse("0-1"), CpuSet::parse("1"), 2, "cpuset.min_shared_cores 2");
}

TEST(APlanner, ComesFromTheConfigWithAllOnlineCpusByDefault) {
  config::CpusetConfig c;
  c.reserved_cores = CpuSet::parse("0");
  auto p = make_planner(c, Topology::synthetic(1, 4, 1));
  EXPECT_EQ(p.usable().to_string(), "1-3");
  c.reservable_cores = CpuSet::parse("0-1");
  c.min_shared_cores = 1;
  EXPECT_EQ(make_planner(c, Topology::synthetic(1, 4, 1)).usable().to_string(), "1");
  c.min_shared_cores = 2;
  EXPECT_THROW(make_planner(c, Topology::synthetic(1, 4, 1)), Error);
}

}  // namespace
}  // namespace runscope::cpuset
