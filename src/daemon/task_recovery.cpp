// TaskManager::recover: what a restarted daemon finds in state_dir and the cgroups, and what it
// does about each (docs/daemon.md, "Recovery rules").
#include <sys/syscall.h>

#include <algorithm>
#include <set>

#include "common/error.hpp"
#include "daemon/task_internal.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {

namespace fs = std::filesystem;

namespace {

// The shim is the very process we started: same pid AND same start time (pid reuse can't fake both).
UniqueFd open_shim(const TaskRecord& r) {
  if (r.shim_pid <= 0) return UniqueFd();
  if (driver::process_start_time(r.shim_pid) != r.shim_start_time) return UniqueFd();
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, r.shim_pid, 0)));
  if (!fd) return UniqueFd();
  // Checked again after opening: the pidfd now pins that very process.
  if (driver::process_start_time(r.shim_pid) != r.shim_start_time) return UniqueFd();
  return fd;
}

}  // namespace

// A shim that an older runscoped left in its own cgroup (where a stop or kill of the daemon's unit
// would take it, and the task's exit status with it) is moved to its supervisor home.
void TaskManager::move_shim_home(cgroup::TaskCgroup* cg, pid_t shim, const TaskId& id) {
  auto* home = cg ? cg->supervisor_home() : nullptr;
  if (!home) return;
  try {
    home->move_in(shim);
  } catch (const std::exception& e) {
    log(id.display() + ": its supervisor (pid " + std::to_string(shim) + ") stays where it is: " + e.what());
  }
}

void TaskManager::recover() {
  fs::path root = options_.state_dir / kTasksDir;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    try {
      recover_one(entry.path());
    } catch (const std::exception& e) {
      log("recovering " + entry.path().string() + ": " + e.what());
    }
  }
  remove_unowned_cgroups();
}

void TaskManager::recover_one(const fs::path& dir) {
  std::optional<TaskRecord> loaded;
  try {
    loaded = read_task_record(dir);
    if (loaded->info.id.cgroup_name() != dir.filename().string()) {
      throw Error(ErrorKind::invalid_argument, (dir / kTaskFile).string() + ": names task " +
                                                   loaded->info.id.display() + ", not this folder's");
    }
  } catch (const Error& e) {
    loaded = rebuild_record(dir, e.what());
    if (!loaded) {
      // Its cgroup, if any, is nobody's now: remove_unowned_cgroups() kills and removes it.
      std::error_code ec;
      fs::remove_all(dir, ec);
      return;
    }
  }
  const TaskRecord& record = *loaded;
  const TaskId& id = record.info.id;
  auto task = std::make_shared<Task>(id, dir, record.info.owner);
  task->record = record;
  task->phase = is_final(record.info.state) ? Phase::finished : Phase::running;
  insert(task);
  if (is_final(record.info.state)) return;
  try {
    task->cg = backend_.adopt(id.cgroup_name(), record.partition);
    auto folders = task->cg->folders();
    std::lock_guard registry(registry_mutex_);
    task->folders = std::move(folders);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::not_found) throw;
    log(id.display() + ": its cgroup is gone");
  }
  // exit.json first: a shim that has recorded the end may still linger as a zombie.
  bool recorded = fs::exists(dir / driver::kExitFile);
  UniqueFd shim = recorded ? UniqueFd() : open_shim(record);
  if (shim && record.info.state == TaskState::running) {
    if (cpusets_ && record.partition == cgroup::CpuPartition::reserved && record.info.cpus) {
      cpusets_->restore(id, *record.info.cpus);
    } else if (cpusets_ && record.partition == cgroup::CpuPartition::shared) {
      cpusets_->add_shared_task();
    }
    TaskEvent event{TaskState::running, std::chrono::system_clock::now(), {}, {}, false, "reattached after restart"};
    move_shim_home(task->cg.get(), record.shim_pid, id);  // before the reactor can see the task
    {
      std::lock_guard lock(task->mutex);
      release_cgroup(*task);  // before the reactor can see it: nothing else acts on it yet
      task->shim_pidfd = std::make_shared<UniqueFd>(std::move(shim));
      record_event(*task, event);
      watch_shim(task);
    }
    emit(id, event);
    return;
  }
  // Ended while we were away (exit.json tells how), or lost: finish_now reads the record, kills
  // what is left in the cgroup and removes it. No cpus were restored, so none are released.
  task->record.partition = cgroup::CpuPartition::none;
  recorded = fs::exists(dir / driver::kExitFile);
  finish_now(task, recorded ? "ended while the daemon was down" : "");
  if (!recorded) log(id.display() + ": its supervisor is gone and left no exit status; reported lost");
}

void TaskManager::remove_unowned_cgroups() {
  std::set<std::string> running;  // of the tasks recovered: whose supervisor homes stay
  {
    std::lock_guard lock(registry_mutex_);
    for (const auto& [id, t] : tasks_) {
      if (t->info && !is_final(t->info->state)) running.insert(t->cgroup_name);
    }
  }
  for (const auto& [name, partition] : backend_.existing()) {
    {
      std::lock_guard lock(registry_mutex_);
      if (by_cgroup_.count(name) != 0) continue;
    }
    try {
      auto cg = backend_.adopt(name, partition);
      cg->destroy(Deadline(clock_, options_.cleanup_timeout));
      log("removed cgroup " + name + ", which no task owns");
    } catch (const std::exception& e) {
      log("removing unowned cgroup " + name + ": " + e.what());
    }
  }
  remove_stray_supervisors(running);
}

void TaskManager::remove_stray_supervisors(const std::set<std::string>& running) noexcept {
  try {
    backend_.remove_stray_supervisors(running);
  } catch (const std::exception& e) {
    log(std::string("removing supervisor homes that no running task owns: ") + e.what());
  }
}

}  // namespace runscope::daemon
