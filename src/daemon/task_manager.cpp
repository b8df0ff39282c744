// TaskManager: construction and shutdown, the registry (what reads see), events and listeners.
#include "daemon/task_manager.hpp"

#include <sys/stat.h>

#include <future>

#include "common/error.hpp"
#include "daemon/task_internal.hpp"

namespace runscope::daemon {

namespace fs = std::filesystem;

namespace {

// The state folder, made if missing. A packaged install makes it 0750 root:runscope
// (tmpfiles.d) and that mode stays; made here, it gets 0700. The tasks folder is 0700 whatever an
// older version left: nobody but root lists tasks or reads their state and logs from the
// filesystem (a member gets its own logs as an open fd: open_log). Returns the tasks folder.
fs::path prepare_state_dir(const fs::path& state_dir) {
  if (fs::create_directories(state_dir)) ::chmod(state_dir.c_str(), 0700);
  auto tasks = state_dir / kTasksDir;
  fs::create_directories(tasks);
  if (::chmod(tasks.c_str(), 0700) != 0) throw_system_error("chmod 0700 " + tasks.string());
  return tasks;
}

}  // namespace

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

void answer_all(std::vector<Reply<>>& replies, const Outcome<>& outcome) noexcept {
  for (auto& reply : replies) {
    try {
      reply(outcome);
    } catch (...) {
      // A reply that cannot be sent (the caller left) concerns nobody else.
    }
  }
  replies.clear();
}

class TaskManager::ListenerSlot final : public Subscription {
 public:
  ListenerSlot(TaskManager& manager, std::uint64_t key) : manager_(manager), key_(key) {}
  ~ListenerSlot() override {
    std::lock_guard lock(manager_.listeners_mutex_);
    manager_.listeners_.erase(key_);
  }

 private:
  TaskManager& manager_;
  std::uint64_t key_;
};

TaskManager::TaskManager(cgroup::Backend& backend, cpuset::Cpusets* cpusets, ShimLauncher& launcher, Clock& clock,
                         ManagerOptions options, LogLine log)
    : backend_(backend),
      cpusets_(cpusets),
      launcher_(launcher),
      clock_(clock),
      options_(std::move(options)),
      log_(std::move(log)),
      policy_{options_.denied_uids, options_.kill_signal, options_.kill_timeout,
              options_.quotas ? options_.quotas : std::make_shared<const quota::Quotas>()},
      admission_(options_.admission),
      enters_(enter_limits(options_.admission)),
      writer_(prepare_state_dir(options_.state_dir)),
      pool_(options_.steps) {}

TaskManager::~TaskManager() { shutdown(true); }

void TaskManager::shutdown(bool leave_running) {
  {
    std::lock_guard lock(registry_mutex_);
    if (shut_down_) return;
  }
  if (!leave_running) {
    std::vector<std::future<void>> ends;
    for (const auto& info : list(Caller{})) {
      if (is_final(info.state)) continue;
      auto done = std::make_shared<std::promise<void>>();
      ends.push_back(done->get_future());
      stop(info.id, std::nullopt, Caller{}, [done](const Outcome<>&) { done->set_value(); });
    }
    for (auto& end : ends) end.wait();
  }
  {
    std::lock_guard lock(registry_mutex_);
    if (shut_down_) return;
    shut_down_ = true;
    stopping_ = true;
  }
  // No event, step or write happens after these return; what they held is dropped.
  reactor_.stop();
  pool_.shutdown();
  writer_.shutdown();
  std::vector<TaskPtr> all;
  {
    std::lock_guard lock(registry_mutex_);
    for (const auto& [id, t] : tasks_) all.push_back(t);
  }
  auto gone = std::make_exception_ptr(Error(ErrorKind::conflict, "runscoped is shutting down; the task keeps running"));
  bool any_running = false;
  for (const auto& t : all) {
    std::vector<Reply<>> waiters;
    bool starting;
    {
      std::lock_guard lock(t->mutex);
      starting = t->phase == Phase::starting;
      any_running = any_running || (!starting && !is_final(t->record.info.state));
      waiters.swap(t->end_waiters);
      waiters.insert(waiters.end(), t->gone_waiters.begin(), t->gone_waiters.end());
      t->gone_waiters.clear();
    }
    answer_all(waiters, Outcome<>::failure(gone));
    if (starting) {
      undo_start(t, std::make_exception_ptr(Error(ErrorKind::conflict, "runscoped is shutting down")));
    } else if (t->cg) {
      t->cg->disown();  // running tasks stay; their cgroups are adopted after the restart
    }
  }
  // No task left to supervise (e.g. the package is being removed): no supervisors' home lingers.
  if (!any_running) remove_stray_supervisors({});
}

void TaskManager::log(const std::string& line) const {
  if (log_) log_(line);
}

fs::path TaskManager::task_dir(const TaskId& id) const { return options_.state_dir / kTasksDir / id.cgroup_name(); }

TaskManager::Policy TaskManager::policy() const {
  std::lock_guard lock(policy_mutex_);
  return policy_;
}

void TaskManager::set_task_policy(const config::TaskConfig& task) {
  std::lock_guard lock(policy_mutex_);
  policy_.denied_uids = task.denied_uids;
  policy_.kill_signal = task.kill_signal;
  policy_.kill_timeout = task.kill_timeout;
}

void TaskManager::set_quotas(std::shared_ptr<const quota::Quotas> quotas) {
  if (!quotas) quotas = std::make_shared<const quota::Quotas>();
  std::lock_guard lock(policy_mutex_);
  policy_.quotas = std::move(quotas);
}

void TaskManager::check_serving() const {
  std::lock_guard lock(registry_mutex_);
  if (stopping_) throw Error(ErrorKind::conflict, "the daemon is shutting down");
}

TaskManager::TaskPtr TaskManager::find(const TaskId& id, const Caller& caller) const {
  std::lock_guard lock(registry_mutex_);
  auto it = tasks_.find(id);
  // Someone else's task is reported as missing: its existence is not the caller's business.
  if (it == tasks_.end() || (!caller.is_root() && it->second->owner != caller.uid)) {
    throw Error(ErrorKind::not_found, "no task " + id.display());
  }
  return it->second;
}

void TaskManager::insert(const TaskPtr& task, const AdmitCheck& check) {
  std::lock_guard lock(registry_mutex_);
  if (stopping_) throw Error(ErrorKind::conflict, "the daemon is shutting down");
  const TaskId& id = task->id;
  // A member is told only that a name held by someone else's task is unavailable: whose task it
  // is, and in what state, is not its business (root is told everything).
  auto unavailable = [&] {
    return Error(ErrorKind::conflict, "the name " + id.display() +
                                          " is unavailable (its cgroup name \"" + task->cgroup_name +
                                          "\" is in use); choose another alloc or task name");
  };
  if (auto it = tasks_.find(id); it != tasks_.end()) {
    if (task->owner != 0 && it->second->owner != task->owner) throw unavailable();
    std::shared_ptr<const TaskInfo> info = it->second->info;
    if (info && is_final(info->state)) {
      throw Error(ErrorKind::conflict, "task " + id.display() + " has ended but is not destroyed yet");
    }
    throw Error(ErrorKind::conflict, "task " + id.display() + " exists");
  }
  // "a-b"/"c" and "a"/"b-c" both name the cgroup, scope and state folder "a-b-c": refuse the
  // second, or its failed start would remove the first one's state.
  if (auto it = by_cgroup_.find(task->cgroup_name); it != by_cgroup_.end()) {
    if (task->owner != 0 && it->second->owner != task->owner) throw unavailable();
    throw Error(ErrorKind::conflict, "task " + id.display() + " would share the cgroup name \"" + task->cgroup_name +
                                         "\" with task " + it->second->id.display() +
                                         "; choose another alloc or task name");
  }
  if (check) check(usage_of(task->owner));
  task->info = std::make_shared<const TaskInfo>(task->record.info);
  tasks_.emplace(id, task);
  by_cgroup_.emplace(task->cgroup_name, task);
  by_owner_[task->owner].insert(id);
}

// What counts against [limits]: every task of `owner` that has not ended, starts under way too
// (their spec is published at insert, with the memory_max the quota gave them).
quota::Usage TaskManager::usage_of(uid_t owner) const {
  quota::Usage usage;
  auto own = by_owner_.find(owner);
  if (own == by_owner_.end()) return usage;
  for (const auto& id : own->second) {
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !it->second->info || is_final(it->second->info->state)) continue;
    const auto& resources = it->second->info->spec.resources;
    usage.tasks += 1;
    usage.reserved_cores += resources.cores.value_or(0);
    usage.memory += resources.memory_max.value_or(0);
  }
  return usage;
}

void TaskManager::erase(const TaskPtr& task) noexcept {
  std::lock_guard lock(registry_mutex_);
  auto it = tasks_.find(task->id);
  if (it == tasks_.end() || it->second != task) return;
  tasks_.erase(it);
  by_cgroup_.erase(task->cgroup_name);
  if (auto o = by_owner_.find(task->owner); o != by_owner_.end()) {
    o->second.erase(task->id);
    if (o->second.empty()) by_owner_.erase(o);
  }
}

void TaskManager::publish(Task& task) {
  auto info = std::make_shared<const TaskInfo>(task.record.info);
  std::lock_guard lock(registry_mutex_);
  task.info = std::move(info);
}

void TaskManager::record_event(Task& task, TaskEvent event) {
  std::lock_guard lock(registry_mutex_);
  task.history.push_back(std::move(event));
  while (task.history.size() > options_.history_limit) task.history.pop_front();
}

void TaskManager::persist_now(const Task& task) const {
  try {
    write_task_record(task.dir, task.record);
  } catch (const Error& e) {
    log("cannot save the state of " + task.id.display() + ": " + e.what());
  }
}

std::unique_ptr<Subscription> TaskManager::subscribe(Listener listener) {
  std::lock_guard lock(listeners_mutex_);
  auto key = next_listener_++;
  listeners_.emplace(key, std::move(listener));
  return std::make_unique<ListenerSlot>(*this, key);
}

void TaskManager::emit(const TaskId& id, const TaskEvent& what) {
  TaskEvent event = what;
  {
    std::lock_guard registry(registry_mutex_);
    if (auto it = tasks_.find(id); it != tasks_.end()) event.owner = it->second->owner;
  }
  std::lock_guard lock(listeners_mutex_);
  for (auto& [key, listener] : listeners_) {
    try {
      listener(id, event);
    } catch (const std::exception& e) {
      log(std::string("an event listener failed: ") + e.what());
    }
  }
}

cgroup::TaskCgroup* TaskManager::cgroup_of(Task& task) const {
  if (!task.cg && task.cg_released) {
    task.cg_released = false;
    try {
      task.cg = backend_.adopt(task.cgroup_name, task.record.partition);
    } catch (const std::exception& e) {
      log("adopting the cgroup of " + task.id.display() + " again: " + e.what());
    }
  }
  return task.cg.get();
}

void TaskManager::release_cgroup(Task& task) const noexcept {
  if (!options_.release_cgroups || !task.cg) return;
  task.cg->disown();  // its folders stay; only our handles on them close
  task.cg.reset();
  task.cg_released = true;
}

void TaskManager::release_cpus(const Task& task) noexcept {
  if (!cpusets_) return;
  try {
    if (task.record.partition == cgroup::CpuPartition::reserved) cpusets_->release(task.id);
    if (task.record.partition == cgroup::CpuPartition::shared) cpusets_->remove_shared_task();
  } catch (const std::exception& e) {
    log(std::string("releasing cpus of ") + task.id.display() + ": " + e.what());
  }
}

}  // namespace runscope::daemon
