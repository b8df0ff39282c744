#include "support/manager_fixture.hpp"

#include <signal.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "common/file.hpp"
#include "support/held_child.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::testing {

namespace fs = std::filesystem;

StateWaiter::StateWaiter(daemon::TaskService& service) {
  sub_ = service.subscribe([this](const TaskId& id, const daemon::TaskEvent& e) {
    std::lock_guard lock(mutex_);
    last_.insert_or_assign(id, e.state);
    cv_.notify_all();
  });
}

bool StateWaiter::wait_final(const TaskId& id, std::chrono::seconds budget) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, budget, [&] {
    auto it = last_.find(id);
    return it != last_.end() && daemon::is_final(it->second);
  });
}

std::unique_ptr<cgroup::Backend> V1Env::make_backend(Clock& clock) const {
  return cgroup::make_v1_backend(cgroup::V1Options{layout, own, parent, &clock, cgroup::CgroupFsOps::kernel(), "/proc"});
}

std::vector<fs::path> V1Env::leftovers() const {
  std::vector<fs::path> out;
  for (const char* c : cgroup::kV1TaskControllers) {
    if (!layout.v1_mounts.count(c)) continue;
    auto base = layout.v1_mounts.at(c) / fs::path(own.at(c)).relative_path() / parent;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(base, ec)) {
      auto name = e.path().filename();
      // The partitions and the shims' shared home are the parent's, never a task's.
      if (e.is_directory() && name != "shared" && name != "reserved" && name != "supervisors") out.push_back(e.path());
    }
  }
  return out;
}

// SIGKILLs whatever is still inside the test's parent (a test that failed half-way, or a daemon
// that died, leaves tasks there); true once every folder under it is empty.
static bool kill_leftovers(const std::vector<fs::path>& bases) {
  bool empty = true;
  for (const auto& base : bases) {
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(base, ec)) {
      if (e.path().filename() != "cgroup.procs") continue;
      std::istringstream pids(read_file_if_exists(e.path()).value_or(""));
      for (pid_t pid; pids >> pid;) {
        empty = false;
        ::kill(pid, SIGKILL);
      }
    }
  }
  return empty;
}

void V1Env::remove_parent() const {
  std::vector<fs::path> bases;
  for (const char* c : cgroup::kV1TaskControllers) {
    if (layout.v1_mounts.count(c)) bases.push_back(layout.v1_mounts.at(c) / fs::path(own.at(c)).relative_path() / parent);
  }
  for (int round = 0; round < 500 && !kill_leftovers(bases); ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the kernel reaps the killed ones
  }
  for (const char* c : cgroup::kV1TaskControllers) {
    if (!layout.v1_mounts.count(c)) continue;
    auto base = layout.v1_mounts.at(c) / fs::path(own.at(c)).relative_path() / parent;
    std::vector<fs::path> dirs;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(base, ec)) {
      if (e.is_directory()) dirs.push_back(e.path());
    }
    std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
      return a.string().size() > b.string().size();
    });
    for (const auto& d : dirs) ::rmdir(d.c_str());
    ::rmdir(base.c_str());
  }
}

std::optional<std::string> manager_host_skip_reason() {
  if (!is_root()) return "needs root to write cgroupfs";
  if (driver::detect_layout().version() != cgroup::Version::v1) return "these manager host tests drive cgroup v1";
#ifndef RUNSCOPE_SHIM_BINARY
  return "runscope-shim was not built";
#else
  return std::nullopt;
#endif
}

V1Env make_v1_env(const std::string& tag) {
  return V1Env{driver::detect_layout(), cgroup::own_cgroups(), "runscope-test-" + std::to_string(::getpid()) + "-" + tag};
}

driver::TaskSpec shell_task(const std::string& alloc, const std::string& task, const std::string& script) {
  driver::TaskSpec spec;
  spec.alloc = alloc;
  spec.task = task;
  spec.config = {{"command", "/bin/sh"}, {"args", {"-c", script}}};
  return spec;
}

}  // namespace runscope::testing
