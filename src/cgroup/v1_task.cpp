#include "cgroup/v1_task.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "cgroup/host.hpp"
#include "cgroup/util.hpp"
#include "cgroup/v1_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;

constexpr auto kDestructorBudget = std::chrono::seconds(10);
constexpr const char* kThawed = "THAWED";

}  // namespace

bool V1Hierarchy::has(const std::string& controller) const {
  return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
}

V1TaskCgroup::V1TaskCgroup(std::vector<V1Hierarchy> hierarchies, Clock& clock, CgroupFsOps ops, fs::path proc_root,
                           std::shared_ptr<const SupervisorFolders> supervisors)
    : hierarchies_(std::move(hierarchies)),
      clock_(clock),
      ops_(std::move(ops)),
      proc_root_(std::move(proc_root)),
      supervisors_(std::move(supervisors)) {
  for (const auto& h : hierarchies_) dirs_.push_back(V2Dir::open(h.dir));
}

V1TaskCgroup::~V1TaskCgroup() {
  try {
    destroy(Deadline(clock_, kDestructorBudget));
  } catch (...) {
    // Best effort by contract: a destructor never throws.
  }
}

const V2Dir* V1TaskCgroup::dir_with(const std::string& controller) const {
  for (std::size_t i = 0; i < hierarchies_.size(); ++i) {
    if (hierarchies_[i].owned && hierarchies_[i].has(controller)) return &dirs_[i];
  }
  return nullptr;
}

// cpuset first: once in the task's cpuset, the child never runs on a CPU it should not.
std::vector<std::size_t> V1TaskCgroup::placement_order() const {
  std::vector<std::size_t> order(hierarchies_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_partition(order.begin(), order.end(), [&](std::size_t i) { return hierarchies_[i].has("cpuset"); });
  return order;
}

// The kernel moves a thread that writes "0" to `tasks` without the global threadgroup lock
// (cgroup_procs_write_start: a pid of 0 and a single thread need no threadgroup stability); a
// write to `cgroup.procs` by another process takes it for writing and waits a grace period.
std::vector<UniqueFd> V1TaskCgroup::open_join_files() const {
  std::vector<UniqueFd> fds;
  for (auto i : placement_order()) {
    int fd = ::openat(dirs_[i].fd(), v1file::kTasks, O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw_system_error("open " + (hierarchies_[i].dir / v1file::kTasks).string());
    fds.emplace_back(fd);
  }
  return fds;
}

void V1TaskCgroup::place(pid_t pid) {
  for (auto i : placement_order()) dirs_[i].write(v1file::kProcs, std::to_string(pid));
  check_placed(pid);
}

// The kernel's own view of the pid must name the task's folder in every hierarchy.
void V1TaskCgroup::check_placed(pid_t pid) const {
  auto file = proc_root_ / std::to_string(pid) / "cgroup";
  auto actual = parse_proc_cgroup(read_file(file));
  for (const auto& h : hierarchies_) {
    auto want = "/" + h.dir.lexically_relative(h.mount).string();
    auto it = actual.find(h.controllers.front());
    if (it == actual.end() || it->second != want) {
      throw Error(ErrorKind::system, file.string() + " shows " + h.controllers.front() + ":" +
                                         (it == actual.end() ? "(none)" : it->second) + ", expected " + want);
    }
  }
}

std::vector<pid_t> V1TaskCgroup::pids() const {
  std::set<pid_t> all;
  for (std::size_t i = 0; i < dirs_.size(); ++i) {
    if (!hierarchies_[i].owned) continue;  // the shared cpuset holds other tasks too
    for (pid_t pid : dirs_[i].pids()) all.insert(pid);
  }
  return {all.begin(), all.end()};
}

bool V1TaskCgroup::freeze(const Deadline& deadline) const {
  const V2Dir* freezer = dir_with("freezer");
  if (!freezer) return false;
  return cg_freezer_freeze([&](const char* state) { freezer->write(v1file::kFreezerState, state); },
                           [&] { return freezer->read(v1file::kFreezerState).value_or(""); }, deadline);
}

void V1TaskCgroup::thaw() const noexcept {
  try {
    if (const V2Dir* freezer = dir_with("freezer")) freezer->write(v1file::kFreezerState, kThawed);
  } catch (...) {
    // Cleanup path: nothing more to do than the caller's own error.
  }
}

void V1TaskCgroup::kill_all(const Deadline& deadline, KillMethod method) {
  if (destroyed_) return;
  if (method == KillMethod::cgroup_kill) {
    throw Error(ErrorKind::unsupported, "cgroup.kill does not exist on cgroup v1 (" + location() + ")");
  }
  // The common case after the main process exits: nothing is left. An empty cgroup cannot gain a
  // member by forking, so one cgroup.procs read per hierarchy replaces freeze, SIGKILL and thaw.
  if (pids().empty()) return;
  kill_everything(deadline);
}

void V1TaskCgroup::kill_everything(const Deadline& deadline) {
  try {
    if (const V2Dir* pids_dir = dir_with("pids")) pids_dir->write(v1file::kPidsMax, "0");
    freeze(deadline);  // without a freezer (or if it stays FREEZING) the SIGKILL rounds below still finish
    cg_kill_pids(pids(), SIGKILL);
  } catch (...) {
    thaw();
    throw;
  }
  thaw();  // v1 tasks only die once thawed
  bool empty = cg_poll_until(deadline, [&] {
    auto left = pids();
    cg_kill_pids(left, SIGKILL);
    return left.empty();
  });
  if (!empty) {
    throw Error(ErrorKind::timeout, location() + " still holds " + std::to_string(pids().size()) +
                                        " process(es) after the kill deadline");
  }
}

void V1TaskCgroup::destroy(const Deadline& deadline) {
  if (destroyed_) return;
  kill_all(deadline, KillMethod::automatic);
  for (const auto& h : hierarchies_) {
    if (!h.owned) continue;
    int err = 0;
    cg_poll_until(deadline, [&] {
      err = ops_.remove_dir(h.dir);
      // Busy: something joined after the empty check (a writer outside us): kill it all.
      if (err == EBUSY) kill_everything(deadline);
      return err == 0 || err == ENOENT;
    });
    if (err != 0 && err != ENOENT) throw_system_error("rmdir " + h.dir.string(), err);
  }
  destroyed_ = true;
}

void V1TaskCgroup::set_cpuset(const CpuSet& cpus) {
  if (cpus.empty()) throw Error(ErrorKind::invalid_argument, "refusing an empty cpuset for " + location());
  const V2Dir* cpuset = dir_with("cpuset");
  if (!cpuset) {
    throw Error(ErrorKind::unsupported, location() + " has no cpuset folder of its own (shared partition or no "
                                                     "cpuset hierarchy)");
  }
  cpuset->write(v1file::kCpusetCpus, cpus.to_string());
}

Stats v1_stats(const V2Dir* cpuacct, const V2Dir* memory, const V2Dir* pids) {
  Stats s;
  if (cpuacct) {
    // cpuacct.stat counts USER_HZ ticks.
    auto ticks = cg_parse_keyed(cpuacct->read(v1file::kCpuacctStat).value_or(""));
    auto usec_per_tick = 1000000 / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
    s.cpu_user = std::chrono::microseconds(ticks["user"] * usec_per_tick);
    s.cpu_system = std::chrono::microseconds(ticks["system"] * usec_per_tick);
  }
  auto number = [](const V2Dir* dir, const char* file) -> std::optional<std::uint64_t> {
    auto text = dir ? dir->read(file) : std::nullopt;
    return text ? cg_parse_limit(*text) : std::nullopt;
  };
  s.memory_current = number(memory, v1file::kMemoryUsage);
  s.memory_peak = number(memory, v1file::kMemoryMaxUsage);
  s.pids_current = number(pids, v1file::kPidsCurrent);
  if (memory) s.oom_kills = cg_parse_keyed(memory->read(v1file::kMemoryOomControl).value_or(""))["oom_kill"];
  return s;
}

Stats V1TaskCgroup::stats() const { return v1_stats(dir_with("cpuacct"), dir_with("memory"), dir_with("pids")); }

Folders V1TaskCgroup::folders() const {
  Folders f;
  for (const auto& h : hierarchies_) {
    if (!h.owned) continue;  // the shared cpuset partition holds other tasks too
    for (const auto& c : h.controllers) f.v1.emplace(c, h.dir);
  }
  return f;
}

SupervisorHome* V1TaskCgroup::supervisor_home() const {
  if (!supervisors_) return nullptr;
  if (!home_) home_ = std::make_unique<FolderSupervisorHome>(supervisors_);
  return home_.get();
}

std::string V1TaskCgroup::location() const {
  std::string out;
  for (const auto& h : hierarchies_) out += (out.empty() ? "" : " ") + h.dir.string();
  return out;
}

}  // namespace runscope::cgroup
