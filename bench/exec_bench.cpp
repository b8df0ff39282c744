// CLI against CLI: the wall time of whole command invocations (fork, exec, everything the
// command does, wait), interleaved round by round so that load on this shared machine hits every
// case alike. The first case is the baseline of the ratios.
// Usage: exec_bench ROUNDS [--settle GLOB]... [--idle MS] [--warm-cgroup-lock] [--burst N] NAME=COMMAND...
// (COMMAND split on spaces; stdout and stderr go to /dev/null; a command that exits non-zero fails
// the bench)
// --settle GLOB: before each invocation, wait (untimed, up to 10 s) until nothing matches GLOB, so
// that what an earlier invocation left to finish in the background (systemd-run leaves its scope
// to systemd, which removes it some 30 ms later) does not compete with the next one.
// --idle MS: then an untimed pause, so that every invocation starts on a machine as idle as the
// others'. On the contained systemd an invocation that comes right after a busy one runs about
// 10 ms faster than one after a pause (both CLIs alike, measured), and which case came just
// before then decided the figures more than the cases themselves.
// --warm-cgroup-lock: then, untimed, a no-op cgroup migration of the bench itself (its pid written
// to its own cgroup.procs). The first migration after some 20 ms without one waits for an RCU grace
// period (the kernel's cgroup_threadgroup_rwsem; 12-23 ms measured here); systemd pays it when it
// moves either CLI's process into its scope, so it is the same for both and swamps their
// difference. Taken beforehand, it is not in the figures: what remains is the CLIs' own cost
// after a pause (docs/driver.md, "Third pass").
// --burst N: each case runs N times in a row per round, as a shell loop would run it: the settle
// and the pause only before the first; all N are timed. Each invocation then pays for what the
// one before it (of the same case) left behind.
// Prints a table, then one line per case: `exec case=NAME p50_ms= p90_ms= mean_ms= ratio_p50=`.
#include <fcntl.h>
#include <glob.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Steady = std::chrono::steady_clock;
constexpr int kWarmupRounds = 3;

struct Case {
  std::string name;
  std::vector<std::string> argv;
  std::vector<double> ms;

  double percentile(double p) const {
    auto sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    return sorted[static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1))];
  }
  double mean() const { return std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size()); }
};

Case parse_case(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    std::fprintf(stderr, "exec_bench: '%s' is not NAME=COMMAND\n", text.c_str());
    std::exit(2);
  }
  Case c{text.substr(0, eq), {}, {}};
  std::istringstream words(text.substr(eq + 1));
  for (std::string w; words >> w;) c.argv.push_back(w);
  return c;
}

// One invocation, stdout/stderr to /dev/null; returns milliseconds, exits the bench on failure.
double run_once(const Case& c) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : c.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const auto start = Steady::now();
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
    std::fprintf(stderr, "exec_bench: cannot start %s\n", argv[0]);
    std::exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const auto elapsed = Steady::now() - start;
  posix_spawn_file_actions_destroy(&actions);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "exec_bench: case %s failed (status %d); run it by hand to see why\n", c.name.c_str(), status);
    std::exit(1);
  }
  return std::chrono::duration<double, std::milli>(elapsed).count();
}

bool anything_matches(const std::vector<std::string>& globs) {
  for (const auto& pattern : globs) {
    glob_t found{};
    const int r = ::glob(pattern.c_str(), 0, nullptr, &found);
    ::globfree(&found);
    if (r == 0) return true;
  }
  return false;
}

void settle(const std::vector<std::string>& globs) {
  const auto give_up = Steady::now() + std::chrono::seconds(10);
  while (anything_matches(globs) && Steady::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// The cgroup.procs file of the bench's own cgroup on the unified hierarchy ("0::PATH").
std::string own_cgroup_procs() {
  std::ifstream cgroups("/proc/self/cgroup");
  for (std::string line; std::getline(cgroups, line);) {
    if (line.rfind("0::", 0) != 0) continue;
    const std::string path = line.substr(3);
    return "/sys/fs/cgroup" + (path == "/" ? std::string() : path) + "/cgroup.procs";
  }
  std::fprintf(stderr, "exec_bench: --warm-cgroup-lock: no unified (0::) line in /proc/self/cgroup\n");
  std::exit(2);
}

void warm_cgroup_lock(const std::string& procs) {
  const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::write(fd, "0", 1) != 1) {
    std::fprintf(stderr, "exec_bench: --warm-cgroup-lock: cannot write %s\n", procs.c_str());
    std::exit(2);
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: exec_bench ROUNDS [--settle GLOB]... [--idle MS] [--warm-cgroup-lock] [--burst N] "
                 "NAME=COMMAND...\n");
    return 2;
  }
  const int rounds = std::atoi(argv[1]);
  std::vector<Case> cases;
  std::vector<std::string> settle_globs;
  std::chrono::milliseconds idle{0};
  int burst = 1;
  std::string warm_procs;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--settle" && i + 1 < argc) {
      settle_globs.push_back(argv[++i]);
    } else if (arg == "--idle" && i + 1 < argc) {
      idle = std::chrono::milliseconds(std::atoi(argv[++i]));
    } else if (arg == "--warm-cgroup-lock") {
      warm_procs = own_cgroup_procs();
    } else if (arg == "--burst" && i + 1 < argc) {
      burst = std::max(1, std::atoi(argv[++i]));
    } else {
      cases.push_back(parse_case(argv[i]));
    }
  }
  // A new order each round (seeded: runs are repeatable), so that no case always runs right after
  // the same other one (turning the order by one each round kept every case of three or more
  // behind the same predecessor; see --idle for why that matters).
  std::mt19937 rng(13);
  std::vector<std::size_t> order(cases.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  for (int round = -kWarmupRounds; round < rounds; ++round) {
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t k : order) {
      auto& c = cases[k];
      settle(settle_globs);
      std::this_thread::sleep_for(idle);
      if (!warm_procs.empty()) warm_cgroup_lock(warm_procs);
      for (int n = 0; n < burst; ++n) {
        const double ms = run_once(c);
        if (round >= 0) c.ms.push_back(ms);
      }
    }
  }
  const double base = cases.front().percentile(0.5);
  std::printf("%-28s %9s %9s %9s %10s\n", "wall time per invocation", "p50 ms", "p90 ms", "mean ms", "p50/first");
  for (const auto& c : cases) {
    std::printf("%-28s %9.2f %9.2f %9.2f %9.2fx\n", c.name.c_str(), c.percentile(0.5), c.percentile(0.9), c.mean(),
                c.percentile(0.5) / base);
  }
  for (const auto& c : cases) {
    std::printf("exec case=%s rounds=%d burst=%d p50_ms=%.3f p90_ms=%.3f mean_ms=%.3f ratio_p50=%.3f\n",
                c.name.c_str(), rounds, burst, c.percentile(0.5), c.percentile(0.9), c.mean(),
                c.percentile(0.5) / base);
  }
  return 0;
}
