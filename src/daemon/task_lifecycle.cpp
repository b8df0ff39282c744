// TaskManager: how tasks end (stop, a shim's exit), the watcher thread, events.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/error.hpp"
#include "daemon/task_internal.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {

namespace {

constexpr std::size_t kEventsPerWait = 64;

bool wait_readable(int fd, const Deadline& deadline) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining()).count();
    int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(ms, 0)));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

bool signal_main(TaskManager::Task& task, int sig) {
  pid_t pid = task.record.info.pid;
  if (pid <= 0 || !task.cg) return false;
  auto pids = task.cg->pids();
  if (std::find(pids.begin(), pids.end(), pid) == pids.end()) return false;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return false;
  // Opened after the check: if the pid had been reused in between, it would not be in our cgroup.
  pids = task.cg->pids();
  if (std::find(pids.begin(), pids.end(), pid) == pids.end()) return false;
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0) < 0) {
    if (errno == ESRCH) return false;
    throw_system_error("signal " + std::to_string(sig) + " to pid " + std::to_string(pid));
  }
  return true;
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

std::unique_ptr<Subscription> TaskManager::subscribe(Listener listener) {
  std::lock_guard lock(listeners_mutex_);
  auto key = next_listener_++;
  listeners_.emplace(key, std::move(listener));
  return std::make_unique<ListenerSlot>(*this, key);
}

void TaskManager::emit(const TaskId& id, const TaskEvent& event) {
  std::lock_guard lock(listeners_mutex_);
  for (auto& [key, listener] : listeners_) {
    try {
      listener(id, event);
    } catch (const std::exception& e) {
      log(std::string("an event listener failed: ") + e.what());
    }
  }
}

void TaskManager::stop_locked(const TaskPtr& task, Duration timeout) {
  std::shared_ptr<UniqueFd> shim;
  int sig;
  {
    std::lock_guard lock(mutex_);
    task->stop_requested = true;
    if (!task->record.stop_requested) {
      task->record.stop_requested = true;
      persist(*task);
    }
    shim = task->shim_pidfd;
    sig = task->record.info.spec.kill_signal.value_or(options_.kill_signal);
  }
  cgroup_of(*task);  // kept until finish_locked removes it
  try {
    bool signalled = timeout > Duration::zero() && signal_main(*task, sig);
    if (!(signalled && shim && wait_readable(shim->get(), Deadline(clock_, timeout))) && task->cg) {
      task->cg->kill_all(Deadline(clock_, options_.cleanup_timeout));
    }
    // The shim records the exit and ends; one that doesn't (hung, or gone) is not waited for.
    if (shim && !wait_readable(shim->get(), Deadline(clock_, options_.cleanup_timeout))) {
      ::syscall(SYS_pidfd_send_signal, shim->get(), SIGKILL, nullptr, 0);
      wait_readable(shim->get(), Deadline(clock_, options_.cleanup_timeout));
    }
  } catch (const std::exception& e) {
    log("stopping " + task->record.info.id.display() + ": " + e.what());
  }
  finish_locked(task, std::nullopt, "");
}

namespace {

// How a task ended, as far as its shim and cgroup can tell.
struct Ending {
  std::optional<driver::ExitRecord> exit;
  cgroup::Stats stats;
  std::string note;
};

void reap_shim(const std::shared_ptr<UniqueFd>& shim, bool own_child) {
  if (!shim || !own_child) return;  // an adopted shim is reaped by its new parent
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(shim->get()), &info, WEXITED) < 0 && errno == EINTR) {
  }
}

TaskState final_state(const Ending& end, bool stop_requested) {
  if (!end.exit) return stop_requested ? TaskState::killed : TaskState::lost;
  const auto& status = end.exit->status;
  if (status.signaled && status.value == SIGKILL && end.stats.oom_kills > 0) return TaskState::oom_killed;
  return stop_requested ? TaskState::killed : TaskState::exited;
}

}  // namespace

// The shim has ended (or the task is being given up): collect its record, kill what is left,
// remove the cgroup, release the cpus, save and announce the final state.
void TaskManager::finish_locked(const TaskPtr& task, std::optional<TaskState> forced, const std::string& message) {
  if (task->finished) return;
  std::shared_ptr<UniqueFd> shim;
  {
    std::lock_guard lock(mutex_);
    shim = task->shim_pidfd;
  }
  reap_shim(shim, task->own_child);
  Ending end{{}, {}, message};
  try {
    end.exit = driver::read_exit_record(task->dir);
  } catch (const Error& e) {
    end.note = e.what();
  }
  if (cgroup_of(*task)) {
    try {
      end.stats = task->cg->stats();
      task->cg->destroy(Deadline(clock_, options_.cleanup_timeout));
    } catch (const std::exception& e) {
      log("cleaning up " + task->record.info.id.display() + ": " + e.what());
    }
    task->cg.reset();
  }
  release_cpus(*task);
  TaskEvent event;
  {
    std::lock_guard lock(mutex_);
    auto& info = task->record.info;
    info.state = forced.value_or(final_state(end, task->stop_requested));
    info.oom_killed = info.state == TaskState::oom_killed;
    if (end.exit) {
      const auto& status = end.exit->status;
      info.exit_code = status.signaled ? std::nullopt : std::optional<int>(status.value);
      info.signal = status.signaled ? std::optional<int>(status.value) : std::nullopt;
      info.finished_at = end.exit->finished_at;
    } else {
      info.finished_at = std::chrono::system_clock::now();
      if (end.note.empty() && info.state == TaskState::lost) {
        end.note = "the supervisor ended without recording an exit status";
      }
    }
    info.pid = 0;
    unwatch_shim(*task);
    task->shim_pidfd.reset();
    task->finished = true;
    persist(*task);
    event = TaskEvent{info.state, *info.finished_at, info.exit_code, info.signal, info.oom_killed, end.note};
    record_event(task, event);
  }
  emit(task->record.info.id, event);
}

void TaskManager::wake() const {
  std::uint64_t one = 1;
  if (::write(wake_fd_.get(), &one, sizeof one) < 0) {
    // The counter can't overflow in practice; a failed wake only delays the next poll round.
  }
}

void TaskManager::watch_shim(const TaskPtr& task) {
  unwatch_shim(*task);
  if (!task->shim_pidfd || !*task->shim_pidfd) return;
  auto key = next_watch_++;
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = key;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, task->shim_pidfd->get(), &event) < 0) {
    // Cannot happen with a valid pidfd; without the watch the task still ends through stop.
    log("cannot watch the shim of " + task->record.info.id.display() + ": " + std::strerror(errno));
    return;
  }
  watched_.emplace(key, Watch{task, task->shim_pidfd});
  task->watch_key = key;
}

void TaskManager::unwatch_shim(Task& task) {
  auto it = watched_.find(task.watch_key);
  task.watch_key = 0;
  if (it == watched_.end()) return;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second.pidfd->get(), nullptr);
  watched_.erase(it);
}

// Level-triggered: a shim's pidfd stays readable once it ended, so its watch is removed as soon
// as it is seen. Each event costs the same however many shims are watched.
void TaskManager::watch() {
  std::array<epoll_event, kEventsPerWait> events{};
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    int n = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      log(std::string("the task watcher failed to wait: ") + std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[static_cast<std::size_t>(i)].data.u64 == 0) {
        std::uint64_t count;
        while (::read(wake_fd_.get(), &count, sizeof count) > 0) {
        }
        continue;
      }
      TaskPtr task;
      {
        std::lock_guard lock(mutex_);
        auto it = watched_.find(events[static_cast<std::size_t>(i)].data.u64);
        if (it == watched_.end()) continue;  // finished meanwhile
        task = it->second.task.lock();
        if (!task) {
          ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second.pidfd->get(), nullptr);
          watched_.erase(it);
          continue;
        }
        unwatch_shim(*task);
        task->exit_seen = true;
      }
      // Whoever holds `op` (a stop or destroy in progress) finishes the task itself.
      std::unique_lock op(task->op, std::try_to_lock);
      if (op.owns_lock()) finish_locked(task, std::nullopt, "");
    }
  }
}

}  // namespace runscope::daemon
