#include "daemon/task_manager.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/file.hpp"
#include "config/config.hpp"
#include "driver/catalog.hpp"
#include "driver/credentials.hpp"
#include "driver/shim_protocol.hpp"
#include "daemon/task_internal.hpp"

namespace runscope::daemon {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCoresEnv = "RUNSCOPE_CPU_CORES";

// A shim whose task can't be recorded: it goes (and is reaped, it is our child) before the start fails.
void kill_shim(const LaunchedShim& shim) noexcept {
  if (!shim.pidfd) return;
  ::syscall(SYS_pidfd_send_signal, shim.pidfd.get(), SIGKILL, nullptr, 0);
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(shim.pidfd.get()), &info, WEXITED) < 0 && errno == EINTR) {
  }
}

// Who the task runs as: a caller that is not root only as itself, whatever the spec says.
std::optional<driver::Credentials> run_as(const driver::TaskSpec& spec, const Caller& caller) {
  if (caller.is_root()) {
    if (!spec.user) return std::nullopt;
    return driver::resolve_credentials(*spec.user);
  }
  driver::Credentials own{caller.uid, caller.gid, {}};
  try {
    own = driver::resolve_credentials(std::to_string(caller.uid));
  } catch (const Error&) {
    // A uid without a passwd entry still runs as itself, with no supplementary groups.
  }
  if (spec.user) {
    auto named = driver::resolve_credentials(*spec.user);
    if (named.uid != caller.uid) {
      throw Error(ErrorKind::permission, "user: a caller that is not root may run tasks only as itself (uid " +
                                             std::to_string(caller.uid) + "), not as '" + *spec.user + "'");
    }
  }
  return own;
}

cgroup::Limits limits_for(const driver::TaskSpec& spec) {
  cgroup::Limits l;
  l.memory_max = spec.resources.memory_max;
  l.cpu_weight = spec.resources.cpu_weight;
  l.pids_max = spec.resources.pids_max;
  return l;
}

driver::ShimLaunch shim_launch(const TaskId& id, const driver::TaskSpec& spec, const driver::SpawnSpec& spawn,
                               const std::optional<driver::Credentials>& creds, bool journal_by_default) {
  driver::ShimLaunch l;
  l.alloc = id.alloc();
  l.task = id.task();
  l.argv = spawn.argv;
  l.env = spawn.env;
  l.cwd = spawn.cwd.string();
  l.credentials = creds;
  l.journal = spec.log.target == driver::LogSpec::Target::journal ||
              (spec.log.target == driver::LogSpec::Target::automatic && journal_by_default);
  l.max_size = spec.log.max_size;
  l.max_files = spec.log.max_files;
  return l;
}

}  // namespace

TaskManager::TaskManager(cgroup::Backend& backend, cpuset::Cpusets* cpusets, ShimLauncher& launcher, Clock& clock,
                         ManagerOptions options, LogLine log)
    : backend_(backend),
      cpusets_(cpusets),
      launcher_(launcher),
      clock_(clock),
      options_(std::move(options)),
      log_(std::move(log)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!wake_fd_) throw_system_error("eventfd");
  if (!epoll_fd_) throw_system_error("epoll_create1");
  epoll_event wake_event{};
  wake_event.events = EPOLLIN;
  wake_event.data.u64 = 0;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &wake_event) < 0) {
    throw_system_error("epoll_ctl add the watcher's eventfd");
  }
  // A packaged install makes the state dir 0750 root:runscope (tmpfiles.d) and that mode stays;
  // made here, it gets 0755 so that callers can open their own tasks' log files.
  if (fs::create_directories(options_.state_dir)) ::chmod(options_.state_dir.c_str(), 0755);
  fs::create_directories(options_.state_dir / kTasksDir);
  watcher_ = std::thread([this] { watch(); });
}

TaskManager::~TaskManager() { shutdown(true); }

void TaskManager::shutdown(bool leave_running) {
  if (!leave_running) {
    std::vector<TaskPtr> all;
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, t] : tasks_) all.push_back(t);
    }
    for (auto& t : all) {
      OpLock op(*this, t);
      if (!t->finished) stop_locked(t, kill_timeout_for(*t));
    }
  }
  {
    std::lock_guard lock(mutex_);
    if (shut_down_) return;
    shut_down_ = true;
    stopping_ = true;
  }
  wake();
  if (watcher_.joinable()) watcher_.join();
  std::lock_guard lock(mutex_);
  for (auto& [id, t] : tasks_) {
    if (t->cg) t->cg->disown();  // running tasks stay; their cgroups are adopted after the restart
  }
}

void TaskManager::log(const std::string& line) const {
  if (log_) log_(line);
}

fs::path TaskManager::task_dir(const TaskId& id) const {
  return options_.state_dir / kTasksDir / id.cgroup_name();
}

TaskManager::TaskPtr TaskManager::find(const TaskId& id, const Caller& caller) const {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(id);
  // Someone else's task is reported as missing: its existence is not the caller's business.
  if (it == tasks_.end() || (!caller.is_root() && it->second->record.info.owner != caller.uid)) {
    throw Error(ErrorKind::not_found, "no task " + id.display());
  }
  return it->second;
}

void TaskManager::set_task_policy(const config::TaskConfig& task) {
  std::lock_guard lock(mutex_);
  options_.denied_uids = task.denied_uids;
  options_.kill_signal = task.kill_signal;
  options_.kill_timeout = task.kill_timeout;
}

Duration TaskManager::kill_timeout_for(const Task& task) const {
  std::lock_guard lock(mutex_);
  return task.record.info.spec.kill_timeout.value_or(options_.kill_timeout);
}

TaskId TaskManager::start(const driver::TaskSpec& spec, const Caller& caller) {
  driver::default_catalog().validate(spec);
  auto creds = run_as(spec, caller);
  uid_t uid = creds ? creds->uid : 0;
  if (spec.resources.cores && !cpusets_) {
    throw Error(ErrorKind::unsupported,
                "resources.cores: this daemon runs without the cpuset reconciler" +
                    (options_.cpusets_off_reason.empty() ? "" : " (" + options_.cpusets_off_reason + ")"));
  }
  TaskId id(spec.alloc.value_or(random_uuid()), spec.task);
  auto task = std::make_shared<Task>(blank_info(id));
  task->dir = task_dir(id);
  task->record.info.owner = caller.uid;
  task->record.info.spec = spec;
  task->record.info.spec.alloc = id.alloc();
  task->record.info.manager = backend_.manager_name();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw Error(ErrorKind::conflict, "the daemon is shutting down");
    // Under the lock: a reload may change the list at any time.
    if (std::find(options_.denied_uids.begin(), options_.denied_uids.end(), uid) != options_.denied_uids.end()) {
      throw Error(ErrorKind::permission, "uid " + std::to_string(uid) + " is in [task] denied_uids");
    }
    auto it = tasks_.find(id);
    if (it != tasks_.end()) {
      if (!is_final(it->second->record.info.state)) throw Error(ErrorKind::conflict, "task " + id.display() + " exists");
      throw Error(ErrorKind::conflict, "task " + id.display() + " has ended but is not destroyed yet");
    }
    // "a-b"/"c" and "a"/"b-c" both name the cgroup, scope and state folder "a-b-c": refuse the
    // second, or its failed start would remove the first one's state.
    // Escapes never hold '-', so equal names mean equal raw lengths: a cheap test before the strings.
    auto name = id.cgroup_name();
    auto length = id.alloc().size() + id.task().size();
    for (const auto& [other, t] : tasks_) {
      if (other.alloc().size() + other.task().size() == length && other.cgroup_name() == name) {
        throw Error(ErrorKind::conflict, "task " + id.display() + " would share the cgroup name \"" + name +
                                             "\" with task " + other.display() + "; choose another alloc or task name");
      }
    }
    tasks_.emplace(id, task);  // holds the name while the task is made
  }
  OpLock op(*this, task);
  try {
    launch(task, spec, caller);
  } catch (...) {
    release_cpus(*task);
    task->cg.reset();  // kills whatever got in and removes the cgroup
    std::error_code ec;
    fs::remove_all(task->dir, ec);
    std::lock_guard lock(mutex_);
    tasks_.erase(id);
    throw;
  }
  return id;
}

void TaskManager::launch(const TaskPtr& task, const driver::TaskSpec& spec, const Caller& caller) {
  const TaskId& id = task->record.info.id;
  auto creds = run_as(spec, caller);
  cgroup::Limits limits = limits_for(spec);
  driver::SpawnSpec spawn = driver::default_catalog().get(spec.driver).to_spawn(spec, options_.base_env);
  std::optional<CpuSet> cpus;
  auto partition = cgroup::CpuPartition::none;
  if (spec.resources.cores) {
    cpus = cpusets_->reserve(id, *spec.resources.cores);
    partition = cgroup::CpuPartition::reserved;
    limits.cpuset = cpus;
    spawn.env.push_back(std::string(kCoresEnv) + "=" + cpus->to_string());
  } else if (cpusets_) {
    cpusets_->add_shared_task();
    partition = cgroup::CpuPartition::shared;
  }
  limits.partition = partition;
  {
    std::lock_guard lock(mutex_);  // list() may read the record meanwhile
    task->record.info.cpus = cpus;
    task->record.partition = partition;
  }
  task->cg = backend_.create(id, limits);
  {
    std::lock_guard lock(mutex_);
    task->record.info.location = task->cg->location();
  }

  fs::create_directories(task->dir);
  ::chmod(task->dir.c_str(), 0755);
  write_file_atomic(task->dir / driver::kLaunchFile,
                    driver::to_json_text(shim_launch(id, spec, spawn, creds, options_.journal_logs)), 0600);
  {
    // Unlike persist(), a failure here fails the start: a task without its state entry would be
    // unowned after a restart (and removed). Nothing runs yet; start() undoes the rest.
    std::lock_guard lock(mutex_);
    write_task_record(task->dir, task->record);
  }
  auto shim = launcher_.launch(task->dir, *task->cg, Deadline(clock_, options_.start_timeout));
  {
    std::lock_guard lock(mutex_);
    TaskRecord next = task->record;
    next.info.state = TaskState::running;
    next.info.pid = shim.task_pid;
    next.info.started_at = std::chrono::system_clock::now();
    next.shim_pid = shim.pid;
    next.shim_start_time = shim.start_time;
    try {
      write_task_record(task->dir, next);  // e.g. the state disk is full
    } catch (...) {
      kill_shim(shim);  // start() then kills the task through its cgroup
      throw;
    }
    task->record = std::move(next);
    auto& info = task->record.info;
    task->shim_pidfd = std::make_shared<UniqueFd>(std::move(shim.pidfd));
    task->own_child = true;
    watch_shim(task);
    record_event(task, TaskEvent{TaskState::pending, *info.started_at, {}, {}, false, ""});
    record_event(task, TaskEvent{TaskState::running, *info.started_at, {}, {}, false, ""});
  }
  release_cgroup(*task);
  emit(id, task->history[task->history.size() - 2]);
  emit(id, task->history.back());
}

void TaskManager::persist(const Task& task) const {
  try {
    write_task_record(task.dir, task.record);
  } catch (const Error& e) {
    log("cannot save the state of " + task.record.info.id.display() + ": " + e.what());
  }
}

void TaskManager::record_event(const TaskPtr& task, TaskEvent event) {
  task->history.push_back(std::move(event));
  while (task->history.size() > options_.history_limit) task->history.pop_front();
}

void TaskManager::release_cpus(const Task& task) noexcept {
  if (!cpusets_) return;
  try {
    if (task.record.partition == cgroup::CpuPartition::reserved) cpusets_->release(task.record.info.id);
    if (task.record.partition == cgroup::CpuPartition::shared) cpusets_->remove_shared_task();
  } catch (const std::exception& e) {
    log(std::string("releasing cpus of ") + task.record.info.id.display() + ": " + e.what());
  }
}

void TaskManager::stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller) {
  auto task = find(id, caller);
  OpLock op(*this, task);
  if (task->finished) return;
  stop_locked(task, timeout ? *timeout : kill_timeout_for(*task));
}

void TaskManager::signal(const TaskId& id, int sig, const Caller& caller) {
  auto task = find(id, caller);
  OpLock op(*this, task);
  if (task->finished) throw Error(ErrorKind::conflict, "task " + id.display() + " is not running");
  cgroup_of(*task);
  bool signalled = signal_main(*task, sig);
  release_cgroup(*task);
  if (!signalled) throw Error(ErrorKind::conflict, "task " + id.display() + " has no running main process");
}

void TaskManager::destroy(const TaskId& id, const Caller& caller) {
  auto task = find(id, caller);
  {
    OpLock op(*this, task);
    if (!task->finished) stop_locked(task, Duration::zero());
  }
  std::lock_guard lock(mutex_);
  tasks_.erase(id);
  std::error_code ec;
  fs::remove_all(task->dir, ec);
}

TaskInfo TaskManager::inspect(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  std::lock_guard lock(mutex_);
  return task->record.info;
}

std::vector<TaskInfo> TaskManager::list(const Caller& caller) const {
  std::lock_guard lock(mutex_);
  std::vector<TaskInfo> out;
  for (const auto& [id, t] : tasks_) {
    if (caller.is_root() || t->record.info.owner == caller.uid) out.push_back(t->record.info);
  }
  return out;
}

cgroup::Stats TaskManager::stats(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  OpLock op(const_cast<TaskManager&>(*this), task);
  if (task->finished || !cgroup_of(*task)) {
    throw Error(ErrorKind::conflict, "task " + id.display() + " is not running");
  }
  auto stats = task->cg->stats();
  release_cgroup(*task);
  return stats;
}

cgroup::TaskCgroup* TaskManager::cgroup_of(Task& task) const {
  if (!task.cg && task.cg_released && !task.finished) {
    task.cg_released = false;
    try {
      task.cg = backend_.adopt(task.record.info.id.cgroup_name(), task.record.partition);
    } catch (const std::exception& e) {
      log("adopting the cgroup of " + task.record.info.id.display() + " again: " + e.what());
    }
  }
  return task.cg.get();
}

void TaskManager::release_cgroup(Task& task) const noexcept {
  if (!options_.release_cgroups || !task.cg || task.finished) return;
  task.cg->disown();  // its folders stay; only our handles on them close
  task.cg.reset();
  task.cg_released = true;
}

std::vector<TaskEvent> TaskManager::events(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  std::lock_guard lock(mutex_);
  return {task->history.begin(), task->history.end()};
}

LogInfo TaskManager::logs(const TaskId& id, const Caller& caller) const {
  auto task = find(id, caller);
  std::lock_guard lock(mutex_);
  const auto& spec = task->record.info.spec;
  bool journal = spec.log.target == driver::LogSpec::Target::journal ||
                 (spec.log.target == driver::LogSpec::Target::automatic && options_.journal_logs);
  LogInfo info;
  if (journal) {
    info.target = "journal";
    info.journal_match = {{"RUNSCOPE_ALLOC", id.alloc()}, {"RUNSCOPE_TASK", id.task()}};
  } else {
    info.target = "file";
    info.stdout_path = (task->dir / driver::kStdoutLog).string();
    info.stderr_path = (task->dir / driver::kStderrLog).string();
  }
  return info;
}

CpuPoolInfo TaskManager::cpu_pool() const {
  CpuPoolInfo info;
  if (!cpusets_) return info;
  auto desired = cpusets_->desired();
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
