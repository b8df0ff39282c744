// Cost of one reservation change with N shared tasks running, on the real v1 cpuset hierarchy:
// runscope's partitions (the shared partition, the reserved partition, the one task) beside the
// reference design's per-task rewrite (every task's own cpuset written on every change), in the
// same run, with the same N sleeping processes. Needs root and a v1 cpuset hierarchy with >= 2 CPUs.
//   cpuset_bench [N ...]     default: 10 100 1000
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "cgroup/host.hpp"
#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "cpuset/cgroupfs_applier.hpp"
#include "cpuset/cpusets.hpp"
#include "driver/manager_choice.hpp"

namespace fs = std::filesystem;
using namespace runscope;
using Wall = std::chrono::steady_clock;

namespace {

constexpr int kOurRounds = 50;  // reserve + release pairs
constexpr int kRefRounds = 10;

// N sleeping children and every folder the bench made; the destructor removes all of it.
struct Fixture {
  fs::path parent;
  std::vector<pid_t> pids;
  std::vector<fs::path> dirs;  // made by the bench, removed deepest first

  ~Fixture() {
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::rmdir(it->c_str());
    for (const char* sub : {"reserved/bench-task", "reserved", "shared", ""}) ::rmdir((parent / sub).c_str());
  }

  void spawn(int n, const fs::path& into) {
    for (int i = 0; i < n; ++i) {
      pid_t pid = ::fork();
      if (pid < 0) throw_system_error("fork");
      if (pid == 0) {
        for (;;) ::pause();
      }
      pids.push_back(pid);
      write_file(into / "cgroup.procs", std::to_string(pid));
    }
  }

  void make(const fs::path& dir, const std::string& cpus) {
    if (::mkdir(dir.c_str(), 0755) != 0) throw_system_error("mkdir " + dir.string());
    dirs.push_back(dir);
    write_file(dir / cpuset::kMemsFile, trim(read_file(dir.parent_path() / cpuset::kMemsFile)));
    if (!cpus.empty()) write_file(dir / cpuset::kCpusFile, cpus);
  }
};

double us_since(Wall::time_point t0, int changes) {
  return std::chrono::duration<double, std::micro>(Wall::now() - t0).count() / changes;
}

struct Row {
  int n;
  double ours_us, ours_files, ours_reads, floor_us, ref_us, ref_files;
};

// The kernel's share of a change: one bare write of the shared partition's cpuset.cpus, which
// updates the affinity of every process in it (cpuset's update_tasks_cpumask) before it returns.
// Every change writes that file exactly once, so no design can go below this floor.
double kernel_floor_us(const fs::path& shared, const CpuSet& online) {
  std::string shrunk = (online - CpuSet::parse(std::to_string(online.cpus().back()))).to_string();
  std::string full = online.to_string();
  auto t0 = Wall::now();
  for (int r = 0; r < 2 * kOurRounds; ++r) write_file(shared / cpuset::kCpusFile, r % 2 == 0 ? shrunk : full);
  return us_since(t0, 2 * kOurRounds);
}

Row run(int n, const fs::path& base, const CpuSet& online) {
  Fixture f;
  f.parent = base / ("runscope-bench-" + std::to_string(::getpid()) + "-" + std::to_string(n));
  cpuset::CgroupfsApplier applier({f.parent, cgroup::Version::v1});
  FakeClock clock;
  cpuset::Cpusets cpusets(cpuset::Planner(cpuset::Topology::read(), online, {}, 1), applier, clock,
                          std::chrono::seconds(30));
  cpusets.start();
  f.spawn(n, f.parent / "shared");
  for (int i = 0; i < n; ++i) cpusets.add_shared_task();
  TaskId task("bench", "task");
  f.make(f.parent / "reserved" / task.cgroup_name(), "");

  Row row{n, 0, 0, 0, 0, 0, 0};
  auto before = cpusets.counts();
  double total = 0;
  for (int r = 0; r < kOurRounds; ++r) {
    // The backend would make a fresh task folder: empty its cpus so the task write happens.
    write_file(f.parent / "reserved" / task.cgroup_name() / cpuset::kCpusFile, "\n");
    auto t0 = Wall::now();
    cpusets.reserve(task, 1);
    cpusets.release(task);
    total += us_since(t0, 2);
  }
  auto after = cpusets.counts();
  row.ours_us = total / kOurRounds;
  row.ours_files = static_cast<double>(after.writes - before.writes) / (2 * kOurRounds);
  row.ours_reads = static_cast<double>(after.reads - before.reads) / (2 * kOurRounds);
  row.floor_us = kernel_floor_us(f.parent / "shared", online);

  // The reference design: each task in its own cpuset cgroup, every one rewritten per change.
  f.make(f.parent / "ref", online.to_string());
  std::vector<fs::path> task_dirs;
  for (int i = 0; i < n; ++i) {
    auto dir = f.parent / "ref" / ("task-" + std::to_string(i));
    f.make(dir, online.to_string());
    write_file(dir / "cgroup.procs", std::to_string(f.pids[static_cast<std::size_t>(i)]));
    task_dirs.push_back(dir);
  }
  std::string shrunk = (online - CpuSet::parse(std::to_string(online.cpus().back()))).to_string();
  std::string full = online.to_string();
  auto t0 = Wall::now();
  std::uint64_t files = 0;
  for (int r = 0; r < kRefRounds; ++r)
    for (const auto& dir : task_dirs) {
      write_file(dir / cpuset::kCpusFile, r % 2 == 0 ? shrunk : full);
      ++files;
    }
  row.ref_us = us_since(t0, kRefRounds);
  row.ref_files = static_cast<double>(files) / kRefRounds;
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoi(argv[i]));
  if (sizes.empty()) sizes = {10, 100, 1000};
  try {
    if (::geteuid() != 0) {
      std::puts("cpuset_bench: skipped: needs root to write the real cpuset hierarchy");
      return 0;
    }
    auto layout = driver::detect_layout();
    if (layout.version() != cgroup::Version::v1 || !layout.v1_mounts.count("cpuset")) {
      std::puts("cpuset_bench: skipped: needs a v1 cpuset hierarchy");
      return 0;
    }
    CpuSet online = cpuset::Topology::read().online();
    if (online.size() < 2) {
      std::puts("cpuset_bench: skipped: needs at least 2 online CPUs");
      return 0;
    }
    auto base = layout.v1_mounts.at("cpuset") / fs::path(cgroup::own_cgroups().at("cpuset")).relative_path();
    std::printf("one reservation change (reserve or release of 1 core), v1 cpuset, CPUs %s\n",
                online.to_string().c_str());
    std::printf("%6s | %14s %12s %11s | %14s %14s | %16s %14s | %8s\n", "N", "partitions us", "files/chg",
                "reads/chg", "kernel floor us", "runscope's us", "per-task us", "files/chg", "speedup");
    std::vector<Row> rows;
    for (int n : sizes) {
      Row r = run(n, base, online);
      rows.push_back(r);
      std::printf("%6d | %14.1f %12.1f %11.1f | %14.1f %14.1f | %16.1f %14.1f | %7.1fx\n", r.n, r.ours_us,
                  r.ours_files, r.ours_reads, r.floor_us, r.ours_us - r.floor_us, r.ref_us, r.ref_files,
                  r.ref_us / r.ours_us);
    }
    for (const auto& r : rows) {
      std::printf("cpuset n=%d ours_us=%.1f ours_files=%.1f floor_us=%.1f own_us=%.1f ref_us=%.1f ref_files=%.1f "
                  "speedup=%.1f\n",
                  r.n, r.ours_us, r.ours_files, r.floor_us, r.ours_us - r.floor_us, r.ref_us, r.ref_files,
                  r.ref_us / r.ours_us);
    }
    if (rows.size() >= 2) {
      const Row &lo = rows.front(), &hi = rows.back();
      std::printf("partitions: N=%d costs %.2fx of N=%d; the kernel floor %.2fx; runscope's own share %.2fx\n", hi.n,
                  hi.ours_us / lo.ours_us, lo.n, hi.floor_us / lo.floor_us,
                  (hi.ours_us - hi.floor_us) / (lo.ours_us - lo.floor_us));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpuset_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
