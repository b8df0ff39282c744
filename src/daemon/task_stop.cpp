// TaskManager: StopTask and DestroyTask, and the state machine that carries a task to its end
// (task_internal.hpp). A request joins the task's waiters and returns at once; the grace period is
// a reactor timer; each step (signal, cgroup kill, finish, removal) is one short job on the pool.
#include <sys/syscall.h>

#include <algorithm>

#include "common/error.hpp"
#include "daemon/task_internal.hpp"

namespace runscope::daemon {

namespace fs = std::filesystem;

namespace {
// A grace period longer than this is this: a year is "never" for a kill timeout.
constexpr Duration kLongestGrace = std::chrono::hours(24 * 365);
}  // namespace

void TaskManager::stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller, Reply<> done) {
  TaskPtr task;
  std::shared_ptr<Admission::Ticket> ticket;
  if (auto failure = failure_of([&] {
        check_serving();
        task = find(id, caller);
        ticket = admission_.admit(caller, kRequestWeight, "StopTask");
      })) {
    return done(Outcome<>::failure(std::move(failure)));
  }
  request_end(task, timeout, false, [done = std::move(done), ticket](Outcome<> outcome) {
    ticket->give_back();
    done(std::move(outcome));
  });
}

void TaskManager::destroy(const TaskId& id, const Caller& caller, Reply<> done) {
  TaskPtr task;
  std::shared_ptr<Admission::Ticket> ticket;
  if (auto failure = failure_of([&] {
        check_serving();
        task = find(id, caller);
        ticket = admission_.admit(caller, kRequestWeight, "DestroyTask");
      })) {
    return done(Outcome<>::failure(std::move(failure)));
  }
  request_end(task, Duration::zero(), true,
              [done = std::move(done), ticket](Outcome<> outcome) {
                ticket->give_back();
                done(std::move(outcome));
              });
}

// Ordered, never refused for being busy: a stop or destroy asked for while the task starts is
// applied once it runs; one asked for while it stops joins that stop (an earlier deadline wins).
void TaskManager::request_end(const TaskPtr& task, std::optional<Duration> grace, bool destroy, Reply<> reply) {
  std::optional<Outcome<>> now_answer;
  {
    std::lock_guard lock(task->mutex);
    if (task->phase == Phase::removed) {
      now_answer = Outcome<>::failure(std::make_exception_ptr(Error(ErrorKind::not_found, "no task " + task->id.display())));
    } else if (!destroy && task->phase == Phase::finished) {
      now_answer = Outcome<>::success();
    } else if (task->end_waiters.size() + task->gone_waiters.size() >= options_.max_waiters) {
      now_answer = Outcome<>::failure(std::make_exception_ptr(
          Error(ErrorKind::conflict, std::to_string(options_.max_waiters) + " callers already wait for task " +
                                         task->id.display() + " to end; retry later")));
    } else {
      (destroy ? task->gone_waiters : task->end_waiters).push_back(std::move(reply));
      task->destroy_wanted = task->destroy_wanted || destroy;
      if (task->phase != Phase::finished && task->phase != Phase::finishing) {
        Duration g = grace ? *grace : task->record.info.spec.kill_timeout.value_or(policy().kill_timeout);
        g = std::clamp<Duration>(g, Duration::zero(), kLongestGrace);  // no overflow past the clock's range
        auto at = now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(g);
        if (!task->kill_at || at < *task->kill_at) task->kill_at = at;
      }
      advance(task);
    }
  }
  if (now_answer) reply(*now_answer);
}

void TaskManager::advance(const TaskPtr& task) {
  if (task->busy) return;  // the step in flight calls step_done()
  auto clock = now();
  switch (task->phase) {
    case Phase::starting:  // the start flow drives itself; it calls advance() once running
    case Phase::finishing:
    case Phase::removed:
      return;
    case Phase::running:
      if (task->exit_seen) return begin_finish(task);
      if (task->kill_at) return begin_stop(task);
      return;
    case Phase::stopping:
      if (task->exit_seen) return begin_finish(task);
      if (clock >= *task->kill_at) return begin_kill(task);
      return arm_timer(task, *task->kill_at);
    case Phase::killing:
      if (task->exit_seen) return begin_finish(task);
      if (clock < task->cleanup_at) return arm_timer(task, task->cleanup_at);
      if (!task->shim_killed) {
        // The shim records the exit and ends; one that doesn't (hung) is killed, then given up on.
        task->shim_killed = true;
        if (task->shim_pidfd) ::syscall(SYS_pidfd_send_signal, task->shim_pidfd->get(), SIGKILL, nullptr, 0);
        task->cleanup_at = clock + options_.cleanup_timeout;
        return arm_timer(task, task->cleanup_at);
      }
      log("the supervisor of " + task->id.display() + " did not end after SIGKILL; finishing without it");
      return begin_finish(task);
    case Phase::finished:
      if (task->destroy_wanted) return begin_remove(task);
      return;
  }
}

void TaskManager::arm_timer(const TaskPtr& task, Reactor::TimePoint when) {
  if (task->timer != 0 && task->timer_at <= when) return;  // an earlier one will advance() anyway
  if (task->timer != 0) reactor_.cancel(task->timer);
  task->timer_at = when;
  task->timer = reactor_.at(when, [this, task] { on_timer(task); });
}

void TaskManager::on_timer(const TaskPtr& task) {
  std::lock_guard lock(task->mutex);
  if (task->timer != 0 && now() >= task->timer_at) task->timer = 0;  // else a later one replaced it
  advance(task);
}

void TaskManager::step_done(const TaskPtr& task) {
  std::lock_guard lock(task->mutex);
  task->busy = false;
  advance(task);
}

// Saved before the kill signal is sent, so a daemon that dies mid-stop still reports the task
// `killed` after its restart; then the signal (none when there is no grace period).
void TaskManager::begin_stop(const TaskPtr& task) {
  task->phase = Phase::stopping;
  task->busy = true;
  const bool graceful = *task->kill_at > now();
  const int sig = task->record.info.spec.kill_signal.value_or(policy().kill_signal);
  const pid_t pid = task->record.info.pid;
  cgroup::Folders folders;
  {
    std::lock_guard registry(registry_mutex_);
    folders = task->folders;
  }
  auto signal_step = [this, task, graceful, sig, pid, folders](std::exception_ptr error) {
    if (error) log("saving the stop request of " + task->id.display() + ": " + message_of(error));
    pool_.post(task->owner, [this, task, graceful, sig, pid, folders] {
      bool sent = false;
      try {
        sent = graceful && signal_in_cgroup(folders, pid, sig);
      } catch (const std::exception& e) {
        log("stopping " + task->id.display() + ": " + e.what());
      }
      std::lock_guard lock(task->mutex);
      if (!sent) task->kill_at = now();  // no main process to give a grace period to: the cgroup kill now
      task->busy = false;
      advance(task);
    });
  };
  if (task->record.stop_requested) return signal_step(nullptr);
  task->record.stop_requested = true;
  writer_.write(task->dir / kTaskFile, to_json_text(task->record), 0600, std::move(signal_step));
}

void TaskManager::begin_kill(const TaskPtr& task) {
  task->phase = Phase::killing;
  task->busy = true;
  pool_.post(task->owner, [this, task] {
    try {
      if (auto* cg = cgroup_of(*task)) cg->kill_all(Deadline(clock_, options_.cleanup_timeout));
    } catch (const std::exception& e) {
      log("stopping " + task->id.display() + ": " + e.what());
    }
    std::lock_guard lock(task->mutex);
    task->cleanup_at = now() + options_.cleanup_timeout;
    task->busy = false;
    advance(task);
  });
}

void TaskManager::begin_remove(const TaskPtr& task) {
  task->busy = true;
  pool_.post(task->owner, [this, task] {
    std::error_code ec;
    fs::remove_all(task->dir, ec);
    erase(task);
    std::vector<Reply<>> waiters;
    {
      std::lock_guard lock(task->mutex);
      task->phase = Phase::removed;
      task->busy = false;
      waiters.swap(task->gone_waiters);
      waiters.insert(waiters.end(), task->end_waiters.begin(), task->end_waiters.end());
      task->end_waiters.clear();
    }
    answer_all(waiters, Outcome<>::success());
  });
}

}  // namespace runscope::daemon
