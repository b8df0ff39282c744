// TaskManager's reads and SignalTask: answered at once from what has been published, under the
// registry's short lock only, whatever a task's operation is doing meanwhile. Counters and the
// signal's target are read from the task's cgroup folders by path (no bus round trip).
#include <fcntl.h>
#include <sys/syscall.h>

#include <algorithm>

#include "cgroup/folders.hpp"
#include "common/error.hpp"
#include "daemon/task_internal.hpp"
#include "driver/catalog.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {

bool signal_in_cgroup(const cgroup::Folders& folders, pid_t pid, int sig) {
  if (pid <= 0 || folders.empty()) return false;
  auto in_cgroup = [&] {
    auto pids = cgroup::read_pids(folders);
    return std::binary_search(pids.begin(), pids.end(), pid);
  };
  if (!in_cgroup()) return false;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return false;
  // Checked again after opening: if the pid had been reused in between, it would not be in our cgroup.
  if (!in_cgroup()) return false;
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0) < 0) {
    if (errno == ESRCH) return false;
    throw_system_error("signal " + std::to_string(sig) + " to pid " + std::to_string(pid));
  }
  return true;
}

namespace {

struct Running {
  std::shared_ptr<const TaskInfo> info;
  cgroup::Folders folders;
};

Error not_running(const TaskId& id) { return Error(ErrorKind::conflict, "task " + id.display() + " is not running"); }

}  // namespace

void TaskManager::signal(const TaskId& id, int sig, const Caller& caller) {
  auto task = find(id, caller);
  Running r;
  {
    std::lock_guard lock(registry_mutex_);
    r = {task->info, task->folders};
  }
  if (r.info->state != TaskState::running) throw not_running(id);
  if (!signal_in_cgroup(r.folders, r.info->pid, sig)) {
    throw Error(ErrorKind::conflict, "task " + id.display() + " has no running main process");
  }
}

TaskInfo TaskManager::inspect(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  std::shared_ptr<const TaskInfo> info;
  {
    std::lock_guard lock(registry_mutex_);
    info = task->info;
  }
  return *info;
}

std::vector<TaskInfo> TaskManager::list(const Caller& caller) const {
  std::vector<std::shared_ptr<const TaskInfo>> infos;
  {
    std::lock_guard lock(registry_mutex_);
    if (caller.is_root()) {
      infos.reserve(tasks_.size());
      for (const auto& [id, t] : tasks_) infos.push_back(t->info);
    } else if (auto own = by_owner_.find(caller.uid); own != by_owner_.end()) {
      for (const auto& id : own->second) infos.push_back(tasks_.at(id)->info);
    }
  }
  std::vector<TaskInfo> out;
  out.reserve(infos.size());
  for (const auto& info : infos) out.push_back(*info);  // copied outside the lock
  return out;
}

cgroup::Stats TaskManager::stats(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  Running r;
  {
    std::lock_guard lock(registry_mutex_);
    r = {task->info, task->folders};
  }
  if (r.info->state != TaskState::running || r.folders.empty()) throw not_running(id);
  try {
    return cgroup::read_stats(r.folders);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::not_found) throw not_running(id);  // it ended just now
    throw;
  }
}

std::vector<TaskEvent> TaskManager::events(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  std::lock_guard lock(registry_mutex_);
  return {task->history.begin(), task->history.end()};
}

UniqueFd TaskManager::open_log(const TaskId& id, const std::string& stream, const Caller& caller) const {
  if (stream != "stdout" && stream != "stderr") {
    throw Error(ErrorKind::invalid_argument, "stream: '" + stream + "' is neither stdout nor stderr");
  }
  auto where = logs(id, caller);  // the ownership check: someone else's task is not_found
  if (where.target != "file") {
    throw Error(ErrorKind::unsupported, "task " + id.display() + " logs to the journal (journalctl " +
                                            "RUNSCOPE_ALLOC=" + id.alloc() + " RUNSCOPE_TASK=" + id.task() + ")");
  }
  const std::string& path = stream == "stdout" ? *where.stdout_path : *where.stderr_path;
  // The folder is root's, so nothing the task does can put a link here; O_NOFOLLOW all the same.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (!fd && errno == ENOENT) throw Error(ErrorKind::not_found, "task " + id.display() + " has no " + stream + " log yet");
  if (!fd) throw_system_error("open " + path);
  return fd;
}

LogInfo TaskManager::logs(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  std::shared_ptr<const TaskInfo> info;
  {
    std::lock_guard lock(registry_mutex_);
    info = task->info;
  }
  const auto& spec = info->spec;
  bool journal = spec.log.target == driver::LogSpec::Target::journal ||
                 (spec.log.target == driver::LogSpec::Target::automatic && options_.journal_logs);
  LogInfo out;
  if (journal) {
    out.target = "journal";
    out.journal_match = {{"RUNSCOPE_ALLOC", id.alloc()}, {"RUNSCOPE_TASK", id.task()}};
  } else {
    out.target = "file";
    out.stdout_path = (task->dir / driver::kStdoutLog).string();
    out.stderr_path = (task->dir / driver::kStderrLog).string();
  }
  return out;
}

CpuPoolInfo TaskManager::cpu_pool() const {
  CpuPoolInfo info;
  if (!cpusets_) return info;
  auto desired = cpusets_->desired();  // a published copy: never waits for a change being applied
  info.shared = desired.shared;
  info.reserved = desired.reserved;
  info.reservable = desired.shared | desired.reserved;
  for (const auto& [id, cpus] : desired.tasks) info.reservations.emplace_back(id, cpus);
  return info;
}

std::map<std::string, std::string> TaskManager::fingerprint() const {
  std::string drivers;
  for (const auto& n : driver::default_catalog().names()) drivers += (drivers.empty() ? "" : ",") + n;
  return {{"manager", backend_.manager_name()},
          {"drivers", drivers},
          {"version", RUNSCOPE_VERSION},
          {"state_dir", options_.state_dir.string()},
          {"cpusets", cpusets_ ? "reconciled" : "off"}};
}

}  // namespace runscope::daemon
