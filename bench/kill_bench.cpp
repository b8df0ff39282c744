// Time to empty a 1000-process tree, per kill method, in one run on this host: v2 cgroup.kill,
// v2 freeze + SIGKILL + thaw, v1 freezer freeze + SIGKILL + thaw. Prints a table; needs root.
//   kill_bench [ROUNDS]   (default 5; the median is reported)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cgroup/host.hpp"
#include "cgroup/host.hpp"
#include "cgroup/util.hpp"
#include "cgroup/v1_backend.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "driver/manager_choice.hpp"

namespace {

namespace fs = std::filesystem;
using namespace runscope;
using namespace runscope::cgroup;
using Ms = std::chrono::duration<double, std::milli>;

constexpr int kTree = 1000;
const std::string kScript =
    "i=0; while [ $i -lt " + std::to_string(kTree) + " ]; do sleep 600 & i=$((i+1)); done; wait";

// Forks a child held on a pipe, places it, lets it build the tree; returns its pid.
pid_t start_tree(TaskCgroup& task) {
  auto gate = make_pipe();
  pid_t pid = ::fork();
  if (pid < 0) throw_system_error("fork");
  if (pid == 0) {
    gate.write.reset();
    char byte;
    if (::read(gate.read.get(), &byte, 1) != 1) ::_exit(126);
    ::execl("/bin/sh", "sh", "-c", kScript.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  task.place(pid);
  char go = 'g';
  if (::write(gate.write.get(), &go, 1) != 1) throw_system_error("release child");
  return pid;
}

double one_round(Backend& backend, KillMethod method, int round) {
  auto task = backend.create(TaskId("bench" + std::to_string(::getpid()), "r" + std::to_string(round)), {});
  pid_t pid = start_tree(*task);
  Deadline ready(system_clock(), std::chrono::seconds(120));
  if (!cg_poll_until(ready, [&] { return task->pids().size() > kTree; })) {
    throw Error(ErrorKind::timeout, "the tree never reached " + std::to_string(kTree) + " processes");
  }
  auto start = std::chrono::steady_clock::now();
  task->kill_all(Deadline(system_clock(), std::chrono::seconds(60)), method);
  double ms = Ms(std::chrono::steady_clock::now() - start).count();
  ::waitpid(pid, nullptr, 0);
  task->destroy(Deadline(system_clock(), std::chrono::seconds(10)));
  return ms;
}

struct Row {
  std::string name;
  std::vector<double> ms;
  std::string note;
};

Row measure(const std::string& name, Backend* backend, KillMethod method, int rounds) {
  Row row{name, {}, ""};
  if (!backend) {
    row.note = "not available on this host";
    return row;
  }
  try {
    for (int r = 0; r < rounds; ++r) row.ms.push_back(one_round(*backend, method, r));
  } catch (const std::exception& e) {
    row.note = e.what();
  }
  return row;
}

void print(const std::vector<Row>& rows) {
  std::printf("%-34s %6s %10s %10s %10s\n", "time to empty a 1000-process tree", "rounds", "median ms", "min ms",
              "max ms");
  for (auto row : rows) {
    if (row.ms.empty()) {
      std::printf("%-34s %6s %s\n", row.name.c_str(), "-", row.note.c_str());
      continue;
    }
    std::sort(row.ms.begin(), row.ms.end());
    std::printf("%-34s %6zu %10.1f %10.1f %10.1f %s\n", row.name.c_str(), row.ms.size(), row.ms[row.ms.size() / 2],
                row.ms.front(), row.ms.back(), row.note.c_str());
  }
  // One machine-readable line per measured method (bench/run-all.sh reads them).
  for (auto row : rows) {
    if (row.ms.empty()) continue;
    std::sort(row.ms.begin(), row.ms.end());
    bool kill_file = row.name.find("cgroup.kill") != std::string::npos;
    std::string key = row.name.substr(0, 2) + (kill_file ? "_cgroup_kill" : "_freeze");
    std::printf("kill method=%s rounds=%zu median_ms=%.1f min_ms=%.1f max_ms=%.1f\n", key.c_str(), row.ms.size(),
                row.ms[row.ms.size() / 2], row.ms.front(), row.ms.back());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "kill_bench needs root (it writes cgroupfs)\n");
    return 1;
  }
  int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  auto layout = driver::detect_layout();
  auto own = own_cgroups();
  std::string parent = "runscope-bench-" + std::to_string(::getpid());
  std::unique_ptr<Backend> v2, v1;
  if (!layout.unified_mount.empty()) {
    v2 = make_v2_backend(V2Options{layout.unified_mount, parent, &system_clock(), CgroupFsOps::kernel()});
  }
  if (layout.version() == Version::v1) {
    v1 = make_v1_backend(V1Options{layout, own, parent, &system_clock(), CgroupFsOps::kernel(), "/proc"});
  }
  std::vector<Row> rows;
  rows.push_back(measure("v2 cgroup.kill", v2.get(), KillMethod::cgroup_kill, rounds));
  rows.push_back(measure("v2 freeze + SIGKILL + thaw", v2.get(), KillMethod::freeze, rounds));
  rows.push_back(measure("v1 freezer freeze + SIGKILL + thaw", v1.get(), KillMethod::freeze, rounds));
  print(rows);

  // The parents were made for this run only.
  if (!layout.unified_mount.empty()) ::rmdir((layout.unified_mount / parent).c_str());
  for (const char* c : kV1TaskControllers) {
    if (!layout.v1_mounts.count(c) || !own.count(c)) continue;
    ::rmdir((layout.v1_mounts.at(c) / fs::path(own.at(c)).relative_path() / parent).c_str());
  }
  return 0;
}
