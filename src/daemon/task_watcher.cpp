// TaskManager: the supervisor watcher and how a task ends. Every running task's shim pidfd is in
// the reactor's epoll set (added once when the shim starts or is reattached, removed when it
// ends), so a start or an end costs the same with 10 or 10,000 tasks. A shim's end means the task
// ended: its exit record is read, what is left in its cgroup killed and the cgroup removed, its
// cores released, and its final state saved (durably) and announced.
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/error.hpp"
#include "daemon/task_internal.hpp"
#include "driver/shim_protocol.hpp"
#include "driver/verdict.hpp"

namespace runscope::daemon {

namespace {

// How a task ended, as far as its shim and cgroup can tell.
struct Ending {
  std::optional<driver::ExitRecord> exit;
  cgroup::Stats stats;
  std::string note;
  bool counted = false;  // stats were read
};

// Only a shim that has ended is reaped (waiting for one stuck in the kernel would hold a thread);
// an adopted shim is reaped by its new parent.
void reap_shim(const std::shared_ptr<UniqueFd>& shim, bool own_child) {
  if (!shim || !*shim || !own_child) return;
  pollfd p{shim->get(), POLLIN, 0};
  if (::poll(&p, 1, 0) != 1) return;
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(shim->get()), &info, WEXITED) < 0 && errno == EINTR) {
  }
}

TaskState final_state(const Ending& end, bool stop_requested) {
  if (!end.exit) return stop_requested ? TaskState::killed : TaskState::lost;
  const auto& status = end.exit->status;
  if (driver::ended_by_oom(status, end.stats)) return TaskState::oom_killed;
  return stop_requested ? TaskState::killed : TaskState::exited;
}

// The final record from the ending; returns the event that announces it. Task's lock held.
TaskEvent apply_ending(TaskRecord& record, Ending& end) {
  auto& info = record.info;
  info.state = final_state(end, record.stop_requested);
  info.oom_killed = info.state == TaskState::oom_killed;
  if (end.counted) info.usage = driver::Usage::of(end.stats);
  if (end.exit) {
    const auto& status = end.exit->status;
    info.exit_code = status.signaled ? std::nullopt : std::optional<int>(status.value);
    info.signal = status.signaled ? std::optional<int>(status.value) : std::nullopt;
    info.finished_at = end.exit->finished_at;
  } else {
    info.finished_at = std::chrono::system_clock::now();
    if (end.note.empty() && info.state == TaskState::lost) end.note = "the supervisor ended without recording an exit status";
  }
  info.pid = 0;
  return TaskEvent{info.state, *info.finished_at, info.exit_code, info.signal, info.oom_killed, end.note};
}

}  // namespace

void TaskManager::watch_shim(const TaskPtr& task) {
  if (!task->shim_pidfd || !*task->shim_pidfd) return;
  auto pidfd = task->shim_pidfd;  // the callback keeps it open
  task->shim_watch = reactor_.watch(pidfd->get(), [this, task, pidfd] { on_shim_exit(task); });
}

void TaskManager::on_shim_exit(const TaskPtr& task) {
  std::lock_guard lock(task->mutex);
  if (task->shim_watch == 0) return;  // finished meanwhile
  reactor_.unwatch(task->shim_watch);
  task->shim_watch = 0;
  task->exit_seen = true;
  advance(task);
}

void TaskManager::begin_finish(const TaskPtr& task) {
  task->phase = Phase::finishing;
  task->busy = true;
  if (task->timer != 0) reactor_.cancel(task->timer);
  task->timer = 0;
  if (task->shim_watch != 0) reactor_.unwatch(task->shim_watch);
  task->shim_watch = 0;
  pool_.post(task->owner, [this, task, shim = task->shim_pidfd, own = task->own_child] {
    Ending end{{}, {}, "", false};
    reap_shim(shim, own);
    try {
      end.exit = driver::read_exit_record(task->dir);
    } catch (const Error& e) {
      end.note = e.what();
    }
    if (auto* cg = cgroup_of(*task)) {
      try {
        end.stats = cg->stats();
        end.counted = true;
        cg->destroy(Deadline(clock_, options_.cleanup_timeout));
      } catch (const std::exception& e) {
        log("cleaning up " + task->id.display() + ": " + e.what());
      }
      task->cg.reset();
    }
    release_cpus(*task);
    TaskEvent event;
    std::string text;
    {
      std::lock_guard lock(task->mutex);
      event = apply_ending(task->record, end);
      task->shim_pidfd.reset();
      text = to_json_text(task->record);
    }
    writer_.write(task->dir / kTaskFile, std::move(text), 0600, [this, task, event](std::exception_ptr error) {
      if (error) log("cannot save the state of " + task->id.display() + ": " + message_of(error));
      std::vector<Reply<>> waiters;
      {
        std::lock_guard lock(task->mutex);
        task->phase = Phase::finished;
        publish(*task);
        record_event(*task, event);
        waiters.swap(task->end_waiters);
        task->busy = false;
        advance(task);  // a destroy waiting
      }
      emit(task->id, event);
      answer_all(waiters, Outcome<>::success());
    });
  });
}

// Recovery: the same end, done inline (nothing else acts on the task yet) and saved at once.
void TaskManager::finish_now(const TaskPtr& task, const std::string& message) {
  Ending end{{}, {}, message, false};
  try {
    end.exit = driver::read_exit_record(task->dir);
  } catch (const Error& e) {
    end.note = e.what();
  }
  if (task->cg) {
    try {
      end.stats = task->cg->stats();
      end.counted = true;
      task->cg->destroy(Deadline(clock_, options_.cleanup_timeout));
    } catch (const std::exception& e) {
      log("cleaning up " + task->id.display() + ": " + e.what());
    }
    task->cg.reset();
  }
  release_cpus(*task);
  TaskEvent event;
  {
    std::lock_guard lock(task->mutex);
    event = apply_ending(task->record, end);
    task->phase = Phase::finished;
    persist_now(*task);
    publish(*task);
    record_event(*task, event);
  }
  emit(task->id, event);
}

}  // namespace runscope::daemon
