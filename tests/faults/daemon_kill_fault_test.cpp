// Fault: runscoped is kill -9'd at random moments while the test starts and stops tasks through
// its API (500 starts over 20 rounds, one kill a round, on the host cgroupfs path). After every
// round: no task
// lost (each acknowledged start is listed, running or ended with its TRUE exit status), no cgroup
// that no running task owns, no foreign process touched. The kill moment comes from a seeded RNG
// (printed; RUNSCOPE_FAULT_SEED replays it).
#include <gtest/gtest.h>

#include <signal.h>

#include <iostream>
#include <thread>

#include "faults/fault_harness.hpp"
#include "support/held_child.hpp"

namespace runscope {
namespace {

using namespace std::chrono_literals;

constexpr int kRounds = 20;
constexpr int kStartsPerRound = 25;
constexpr int kMaxKillDelayUs = 60000;  // a start plus a stop take about this long here

enum class Kind { zero, seven, sleeper };

struct Tracked {
  TaskId id;
  Kind kind;
  bool acked = false;        // StartTask answered with the id
  bool stop_sent = false;    // StopTask was called (answered or not)
  bool stop_acked = false;   // StopTask answered
  bool checked = false;      // its final status was verified
};

const char* script_of(Kind k) {
  switch (k) {
    case Kind::zero: return "true";
    case Kind::seven: return "exit 7";
    case Kind::sleeper: break;
  }
  return "exec sleep 600";
}

bool is_final(const std::string& s) { return s != "running" && s != "pending"; }

class KillNineRun {
 public:
  KillNineRun(testing::FaultDaemon& daemon, std::uint64_t seed) : daemon_(daemon), rng_(seed) {}

  // Starts (and stops) tasks; during one random start of the round a thread kill -9's the
  // daemon after a random delay, so the kill lands inside a StartTask or StopTask or between
  // calls; the test restarts it at once (as systemd would) and carries on with the round.
  void round(int r) {
    int victim_op = std::uniform_int_distribution<int>(0, kStartsPerRound - 1)(rng_);
    int delay_us = std::uniform_int_distribution<int>(0, kMaxKillDelayUs)(rng_);
    for (int i = 0; i < kStartsPerRound; ++i) {
      std::thread killer;
      if (i == victim_op) {
        pid_t victim = daemon_.pid();
        killer = std::thread([victim, delay_us] {
          std::this_thread::sleep_for(std::chrono::microseconds(delay_us));  // the fault's random moment
          ::kill(victim, SIGKILL);  // our unreaped child: the pid can't have been reused
        });
      }
      auto kind = static_cast<Kind>(std::uniform_int_distribution<int>(0, 2)(rng_));
      Tracked t{TaskId("k9", "r" + std::to_string(r) + "-" + std::to_string(i)), kind};
      try {
        daemon_.client().start(testing::shell_spec("k9", t.id.task(), script_of(kind)).dump());
        t.acked = true;
      } catch (const std::exception&) {
        // the daemon died under the call: the task may or may not exist
      }
      tracked_.push_back(t);
      if (std::bernoulli_distribution(0.6)(rng_)) stop_one();
      if (killer.joinable()) {
        killer.join();
        daemon_.kill9();
        testing::reap_zombies();  // shims that ended while orphaned to us
        daemon_.start();
      }
    }
  }

  // After a restart: every invariant, waiting (with a deadline) for tasks that are just ending.
  void check() {
    std::map<TaskId, std::string> states;
    bool settled = testing::wait_until([&] {
      states = testing::listed(daemon_.client());
      for (const auto& t : tracked_) {
        auto it = states.find(t.id);
        if (t.kind != Kind::sleeper && it != states.end() && !is_final(it->second)) return false;
      }
      return true;
    }, 30s);
    EXPECT_TRUE(settled) << "short tasks still not ended 30 s after the restart";
    for (auto& t : tracked_) check_one(t, states);
    std::set<std::string> owned;
    EXPECT_TRUE(testing::wait_until([&] {
      owned.clear();
      for (const auto& [id, state] : testing::listed(daemon_.client())) {
        if (!is_final(state)) owned.insert(id.cgroup_name());
      }
      for (const auto& name : daemon_.cgroups()) {
        if (!owned.count(name)) return false;
      }
      return true;
    }, 30s)) << "a cgroup that no running task owns is left";
  }

  void stop_everything() {
    for (const auto& [id, state] : testing::listed(daemon_.client())) {
      if (is_final(state)) continue;
      daemon_.client().stop(id, 2s);
      for (auto& t : tracked_) {
        if (t.id == id) t.stop_sent = t.stop_acked = true;
      }
    }
  }

  std::size_t acked() const {
    return static_cast<std::size_t>(std::count_if(tracked_.begin(), tracked_.end(), [](const Tracked& t) { return t.acked; }));
  }
  std::size_t size() const { return tracked_.size(); }

 private:
  void stop_one() {
    std::vector<Tracked*> running;
    for (auto& t : tracked_) {
      if (t.acked && t.kind == Kind::sleeper && !t.stop_sent) running.push_back(&t);
    }
    if (running.empty()) return;
    Tracked& t = *running[std::uniform_int_distribution<std::size_t>(0, running.size() - 1)(rng_)];
    t.stop_sent = true;
    try {
      daemon_.client().stop(t.id, 2s);
      t.stop_acked = true;
    } catch (const std::exception&) {
    }
  }

  void check_one(Tracked& t, const std::map<TaskId, std::string>& states) {
    SCOPED_TRACE(t.id.display());
    auto it = states.find(t.id);
    if (it == states.end()) {
      EXPECT_FALSE(t.acked) << "an acknowledged task is lost: not listed";
      return;
    }
    if (!t.acked) return;  // a start the daemon died under: listed in whatever state is fine
    const std::string& state = it->second;
    if (t.kind == Kind::sleeper) {
      std::string want = t.stop_acked ? "killed" : !t.stop_sent ? "running" : state == "killed" ? "killed" : "running";
      EXPECT_EQ(state, want) << daemon_.client().inspect(t.id).dump() << "\n" << daemon_.log();
      return;
    }
    if (t.checked) return;
    auto info = daemon_.client().inspect(t.id);
    EXPECT_EQ(state, "exited") << info.dump();
    EXPECT_EQ(info["exit_code"], t.kind == Kind::seven ? 7 : 0) << info.dump();
    t.checked = true;
  }

  testing::FaultDaemon& daemon_;
  std::mt19937_64 rng_;
  std::vector<Tracked> tracked_;
};

TEST(ARunscopedKilledAtRandomMoments, LosesNoTaskOrphansNoCgroupAndTouchesNoForeignProcess) {
  if (auto why = testing::fault_skip_reason()) GTEST_SKIP() << *why;
  auto seed = testing::fault_seed();
  RecordProperty("seed", std::to_string(seed));
  testing::become_subreaper();
  testing::FaultDaemon daemon("kill9");
  testing::Bystanders bystanders(daemon.env(), "kill9");
  KillNineRun run(daemon, seed);
  daemon.start();
  for (int r = 0; r < kRounds; ++r) {
    SCOPED_TRACE("round " + std::to_string(r) + ", seed " + std::to_string(seed));
    run.round(r);
    run.check();
    EXPECT_EQ(bystanders.disturbed(), std::vector<std::string>{});
    if (::testing::Test::HasFailure()) break;
  }
  std::cout << run.size() << " starts, " << run.acked() << " acknowledged, " << kRounds << " kill -9s" << std::endl;
  run.stop_everything();
  run.check();
  daemon.terminate();
  testing::reap_zombies();
  EXPECT_EQ(daemon.cgroups(), std::set<std::string>{}) << "cgroups left after the final stop";
  EXPECT_EQ(bystanders.disturbed(), std::vector<std::string>{});
}

}  // namespace
}  // namespace runscope
