// Fault: hostile tasks, through the daemon's API on the host cgroupfs path, 100 rounds each,
// zero survivors. Every process a task makes writes its pid to a file; the test identifies each
// (pid + start time) while it is still in the task's cgroup, and after the task has ended
// asserts none of them lives on and the task's cgroup is gone.
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <set>
#include <sstream>

#include "common/file.hpp"
#include "faults/fault_harness.hpp"
#include "support/held_child.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kRounds = 100;
constexpr int kBombPidsMax = 200;
constexpr std::size_t kBombLearned = 50;  // pids the bomb has written before the test stops it

struct Hostile {
  std::string name;
  std::string script;          // PIDS stands for the pid file; GO appears once the test has learned them
  nlohmann::json resources;    // merged into the spec
  std::size_t learn = 1;       // pids to learn before acting
  bool stop = false;           // the test stops it (else it ends by itself)
  std::set<std::string> states;  // the final states it may be reported in
};

std::vector<Hostile> hostiles() {
  return {
      // Keeps forking children that record themselves and sleep; pids_max bounds it. At the
      // bound dash gives up ("Cannot fork", exit 2) leaving its children behind, or is stopped.
      {"forkbomb", "while :; do sh -c 'echo $$ >> PIDS; exec sleep 600' & done",
       {{"pids_max", kBombPidsMax}}, kBombLearned, true, {"killed", "exited"}},
      // Double fork + setsid; the main process exits 0 once the test has seen the daemon.
      {"daemonizer",
       "(setsid sh -c 'echo $$ >> PIDS; exec sleep 600' &); while [ ! -e GO ]; do sleep 0.01; done; exit 0",
       nlohmann::json::object(), 1, false, {"exited"}},
      // Ignores every catchable signal (and its children inherit that); only SIGKILL ends it.
      {"ignorer",
       "trap '' HUP INT QUIT USR1 USR2 PIPE ALRM TERM TSTP TTIN TTOU; sleep 600 & echo $! >> PIDS; echo $$ >> PIDS; "
       "while :; do sleep 600; done",
       nlohmann::json::object(), 2, true, {"killed"}},
      // A child, then the main process goes over memory_max.
      {"memhog",
       "sleep 600 & echo $! >> PIDS; echo $$ >> PIDS; while [ ! -e GO ]; do sleep 0.01; done; "
       "exec dd if=/dev/zero of=/dev/null bs=256M count=1",
       {{"memory_max", "32M"}}, 2, false, {"oom_killed"}},
  };
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// The pids in `file` that are (still) in the cgroup `cgroup_name`, identified.
void learn(const fs::path& file, const std::string& cgroup_name, std::map<pid_t, testing::ProcessId>& known) {
  std::istringstream in(read_file_if_exists(file).value_or(""));
  for (pid_t pid; in >> pid;) {
    if (known.count(pid)) continue;
    auto id = testing::identify(pid);
    auto where = read_file_if_exists(fs::path("/proc") / std::to_string(pid) / "cgroup").value_or("");
    if (id && where.find(cgroup_name) != std::string::npos && id->alive()) known.emplace(pid, *id);
  }
}

bool final_state(const std::string& s) { return s != "running" && s != "pending"; }

TEST(HostileTasks, LeaveNoSurvivorsAfterAHundredRoundsEach) {
  if (auto why = testing::fault_skip_reason()) GTEST_SKIP() << *why;
  testing::TempDir tmp;
  testing::FaultDaemon daemon("hostile");
  testing::Bystanders bystanders(daemon.env(), "hostile");
  daemon.start();
  auto& client = daemon.client();
  for (const auto& h : hostiles()) {
    std::size_t learned_total = 0;
    for (int round = 0; round < kRounds; ++round) {
      SCOPED_TRACE(h.name + " round " + std::to_string(round));
      fs::path pids = tmp.path() / (h.name + "-" + std::to_string(round));
      fs::path go = pids.string() + ".go";
      auto spec = testing::shell_spec("hostile", h.name + "-" + std::to_string(round),
                                      replace_all(replace_all(h.script, "PIDS", pids.string()), "GO", go.string()));
      if (!h.resources.empty()) spec["resources"] = h.resources;
      TaskId id = client.start(spec.dump());
      std::map<pid_t, testing::ProcessId> known;
      std::string state;
      testing::wait_until([&] {
        learn(pids, id.cgroup_name(), known);
        state = client.inspect(id)["state"].get<std::string>();
        return known.size() >= h.learn || final_state(state);
      }, 30s);
      // The bomb may give up at its bound and be cleaned up before the test has seen them all.
      if (h.name != "forkbomb") {
        EXPECT_GE(known.size(), h.learn) << "the task did not make its processes";
      }
      if (h.stop) {
        if (!final_state(client.inspect(id)["state"].get<std::string>())) client.stop(id, 200ms);
      } else {
        std::ofstream(go) << "go";
      }
      ASSERT_TRUE(testing::wait_until([&] { return final_state(client.inspect(id)["state"].get<std::string>()); }, 30s));
      auto info = client.inspect(id);
      std::string ended = info["state"].get<std::string>();
      EXPECT_EQ(h.states.count(ended), 1u) << info.dump();
      if (ended == "oom_killed") {
        EXPECT_EQ(info["oom_killed"], true);
      }
      if (h.name == "daemonizer") {
        EXPECT_EQ(info["exit_code"], 0);
      }
      for (const auto& [pid, who] : known) EXPECT_FALSE(who.alive()) << "pid " << pid << " survived";
      EXPECT_EQ(daemon.cgroups().count(id.cgroup_name()), 0u) << "its cgroup is left";
      learned_total += known.size();
      client.destroy(id);
      testing::reap_zombies();
      if (::testing::Test::HasFailure()) return;  // one failing round says enough
    }
    std::cout << h.name << ": " << kRounds << " rounds, " << learned_total << " task processes seen dead" << std::endl;
    EXPECT_GE(learned_total, kRounds * h.learn / 2) << "too few processes were learned for the test to mean much";
  }
  EXPECT_TRUE(daemon.cgroups().empty());
  EXPECT_EQ(bystanders.disturbed(), std::vector<std::string>{});
}

}  // namespace
}  // namespace runscope
