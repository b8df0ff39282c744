// TaskManager: how a task starts, as a chain of short steps and events (docs/daemon.md):
//   admission (caller's thread) -> prepare (pool: parse, check, name, cpus, cgroup, files, fork
//   the shim) -> the shim's "place PID" (reactor) -> place (pool) -> its "started PID" (reactor)
//   -> commit (pool: the record) -> durable (writer: one syncfs per batch) -> running, answered.
// A failure anywhere undoes everything (undo_start): no cgroup, process, state entry or
// reservation is left, and the caller gets the error with its kind.
#include <sys/stat.h>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/task_internal.hpp"
#include "driver/credentials.hpp"
#include "driver/runner.hpp"
#include "driver/shim_protocol.hpp"
#include "driver/task_compile.hpp"

namespace runscope::daemon {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCoresEnv = "RUNSCOPE_CPU_CORES";

// Who the task runs as: a caller that is not root only as itself, whatever the spec says.
std::optional<driver::Credentials> run_as(const driver::TaskSpec& spec, const Caller& caller) {
  if (caller.is_root()) {
    if (!spec.user) return std::nullopt;
    return driver::resolve_user(*spec.user);
  }
  driver::Credentials own{caller.uid, caller.gid, {}};
  try {
    own = driver::resolve_credentials(std::to_string(caller.uid));
  } catch (const Error&) {
    // A uid without a passwd entry still runs as itself, with no supplementary groups.
  }
  if (spec.user) {
    auto named = driver::resolve_user(*spec.user);
    if (named.uid != caller.uid) {
      throw Error(ErrorKind::permission, "user: a caller that is not root may run tasks only as itself (uid " +
                                             std::to_string(caller.uid) + "), not as '" + *spec.user + "'");
    }
  }
  return own;
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


// Who [limits] sees: the caller, with the groups its tasks would run with (a caller that is not
// root runs only as itself; root's groups never matter, it has only its own user table).
quota::Caller quota_caller(const Caller& caller, const std::optional<driver::Credentials>& creds) {
  quota::Caller who{caller.uid, {caller.gid}};
  if (creds && creds->uid == caller.uid) {
    who.gids.push_back(creds->gid);
    who.gids.insert(who.gids.end(), creds->groups.begin(), creds->groups.end());
  }
  return who;
}

quota::Request quota_request(const driver::TaskSpec& spec, bool journal_by_default) {
  quota::Request r;
  r.cores = spec.resources.cores.value_or(0);
  r.cpu_weight = spec.resources.cpu_weight;
  r.memory_max = spec.resources.memory_max;
  r.log_files = spec.log.target == driver::LogSpec::Target::file ||
                (spec.log.target == driver::LogSpec::Target::automatic && !journal_by_default);
  r.log_max_size = spec.log.max_size;
  r.log_max_files = spec.log.max_files;
  return r;
}

}  // namespace

void TaskManager::start(SpecSource source, const Caller& caller, Reply<TaskId> done) {
  std::shared_ptr<Admission::Ticket> ticket;
  if (auto failure = failure_of([&] {
        check_serving();
        ticket = admission_.admit(caller, start_weight(source.bytes), "StartTask");
      })) {
    return done(Outcome<TaskId>::failure(std::move(failure)));
  }
  Reply<TaskId> reply = [done = std::move(done), ticket](Outcome<TaskId> outcome) {
    ticket->give_back();
    done(std::move(outcome));
  };
  pool_.post(caller.uid, [this, source = std::move(source), caller, reply] { prepare(source, caller, reply); });
}

void TaskManager::prepare(const SpecSource& source, const Caller& caller, const Reply<TaskId>& reply) {
  TaskPtr task;
  driver::TaskSpec spec;
  std::optional<driver::Credentials> creds;
  if (auto failure = failure_of([&] {
        spec = source.parse();
        driver::validate_task(spec);
        creds = run_as(spec, caller);
        task = admit_task(spec, caller, creds);
      })) {
    return reply(Outcome<TaskId>::failure(std::move(failure)));
  }
  {
    std::lock_guard lock(task->mutex);
    task->start = std::make_unique<StartFlow>();
    task->start->reply = reply;
  }
  if (auto failure = failure_of([&] { make_task(task, spec, creds); })) undo_start(task, std::move(failure));
}

TaskManager::TaskPtr TaskManager::admit_task(driver::TaskSpec& spec, const Caller& caller,
                                             const std::optional<driver::Credentials>& creds) {
  uid_t uid = creds ? creds->uid : 0;
  if (spec.resources.cores && !cpusets_) {
    throw Error(ErrorKind::unsupported,
                "resources.cores: this daemon runs without the cpuset reconciler" +
                    (options_.cpusets_off_reason.empty() ? "" : " (" + options_.cpusets_off_reason + ")"));
  }
  auto current = policy();  // a reload may change it at any time
  driver::check_uid_allowed(uid, current.denied_uids);
  TaskId id(spec.alloc.value_or(random_uuid()), spec.task);
  auto task = std::make_shared<Task>(id, task_dir(id), caller.uid);
  auto& info = task->record.info;
  info.owner = caller.uid;
  info.spec = spec;
  info.spec.alloc = id.alloc();
  info.manager = backend_.manager_name();
  // Holds the name (and its cgroup name) while the task is made, if the caller's [limits] allow
  // one more task like it given what its others hold now.
  insert(task, [&](const quota::Usage& usage) {
    auto decision = current.quotas->check(quota_caller(caller, creds), usage, quota_request(spec, options_.journal_logs));
    decision.enforce();
    spec.resources.memory_max = decision.memory_max;  // a member's task without one gets its ceiling
    info.spec.resources.memory_max = decision.memory_max;
  });
  return task;
}

// Everything up to the shim's fork, on a pool thread. The shim then talks to on_control().
void TaskManager::make_task(const TaskPtr& task, const driver::TaskSpec& spec,
                            const std::optional<driver::Credentials>& creds) {
  const TaskId& id = task->id;
  auto compiled = driver::compile_task(spec, {options_.base_env}, creds);  // the path `runscope exec` takes too
  cgroup::Limits limits = compiled.limits;
  driver::SpawnSpec spawn = std::move(compiled.spawn);
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
    std::lock_guard lock(task->mutex);
    task->record.info.cpus = cpus;
    task->record.partition = partition;
  }
  task->cg = backend_.create(id, limits);
  std::string record_text;
  {
    std::lock_guard lock(task->mutex);
    task->record.info.location = task->cg->location();
    publish(*task);
    record_text = to_json_text(task->record);
  }
  fs::create_directories(task->dir);
  ::chmod(task->dir.c_str(), 0700);  // root's alone: logs reach their owner through open_log
  // Not synced here: the start is answered only after the batch sync that covers the final
  // record, and a start that was never answered may be undone at recovery.
  write_file_atomic(task->dir / driver::kLaunchFile,
                    driver::to_json_text(shim_launch(id, spec, spawn, creds, options_.journal_logs)), 0600,
                    Durability::deferred);
  // A failure here fails the start: a task without its state entry would be unowned after a
  // restart (and removed).
  write_file_atomic(task->dir / kTaskFile, record_text, 0600, Durability::deferred);
  auto shim = launcher_.spawn(task->dir, *task->cg);
  std::lock_guard lock(task->mutex);
  StartFlow& flow = *task->start;
  flow.shim_pid = shim.pid;
  flow.shim_pidfd = std::make_shared<UniqueFd>(std::move(shim.pidfd));
  flow.control = std::make_shared<UniqueFd>(std::move(shim.control));
  auto control = flow.control;
  flow.control_watch = reactor_.watch(control->get(), [this, task, control] { on_control(task); });
  flow.deadline = reactor_.at(now() + options_.start_timeout, [this, task] { on_start_deadline(task); });
}

// Reactor: one message from the shim (watches are one-shot, so one at a time).
void TaskManager::on_control(const TaskPtr& task) {
  std::lock_guard lock(task->mutex);
  StartFlow* flow = task->start.get();
  if (!flow || flow->done || flow->step_in_flight) return;
  std::optional<std::string> text;
  if (auto failure = failure_of([&] { text = driver::receive_message(flow->control->get()); })) {
    return fail_start(task, std::move(failure));
  }
  if (!text) return fail_start(task, nullptr);  // the shim left: undo_start says why once it is reaped
  auto msg = parse_shim_message(*text);
  if (msg.kind == ShimMessage::Kind::place) {
    flow->step_in_flight = true;
    pool_.post(task->owner, [this, task, pid = msg.pid] { place_step(task, pid); });
  } else if (msg.kind == ShimMessage::Kind::started) {
    flow->step_in_flight = true;
    flow->done = true;
    reactor_.unwatch(flow->control_watch);
    reactor_.cancel(flow->deadline);
    pool_.post(task->owner, [this, task, pid = msg.pid] { commit_start(task, pid); });
  } else {
    fail_start(task, std::make_exception_ptr(msg.error));
  }
}

void TaskManager::on_start_deadline(const TaskPtr& task) {
  std::lock_guard lock(task->mutex);
  StartFlow* flow = task->start.get();
  if (!flow || flow->done) return;
  if (flow->step_in_flight) {
    flow->timed_out = true;  // the step ends the start when it returns
    return;
  }
  fail_start(task, std::make_exception_ptr(Error(
                       ErrorKind::timeout, "runscope-shim did not start " + task->dir.string() + " in time")));
}

void TaskManager::fail_start(const TaskPtr& task, std::exception_ptr error) {
  StartFlow& flow = *task->start;
  flow.done = true;
  reactor_.unwatch(flow.control_watch);
  reactor_.cancel(flow.deadline);
  pool_.post(task->owner, [this, task, error] { undo_start(task, error); });
}

// Pool: moves the held child in (v1: every hierarchy; systemd: its scope) and answers the shim.
// Where placing waits for someone else (systemd's job), the wait is an event: the step only sends
// the request, and the rest is another step once the answer came (no thread waits meanwhile).
void TaskManager::place_step(const TaskPtr& task, pid_t pid) {
  cgroup::TaskCgroup& cg = *task->cg;
  if (!cg.places_asynchronously()) return answer_place(task, place_now(cg, pid, nullptr));
  try {
    cg.begin_place(pid, [this, task, pid](std::exception_ptr sent) {
      pool_.post(task->owner, [this, task, pid, sent] { answer_place(task, place_now(*task->cg, pid, sent)); });
    });
  } catch (const std::exception& e) {
    answer_place(task, std::string("error ") + e.what());
  }
}

// Finishes (or, after a failed request, does) the placing; what to tell the shim.
std::string TaskManager::place_now(cgroup::TaskCgroup& cg, pid_t pid, std::exception_ptr sent) {
  try {
    if (!cg.places_asynchronously() || sent) {
      cg.place(pid);  // the whole of it, with the blocking path's retries
    } else {
      cg.finish_place(pid);
    }
    return "ok";
  } catch (const std::exception& e) {
    return std::string("error ") + e.what();  // the shim kills its child and says "failed"
  }
}

void TaskManager::answer_place(const TaskPtr& task, const std::string& answer) {
  std::shared_ptr<UniqueFd> control;
  {
    std::lock_guard lock(task->mutex);
    control = task->start->control;
  }
  try {
    driver::send_message(control->get(), answer);
  } catch (const Error&) {
    // The shim is gone: its end of the channel reads as EOF next.
  }
  std::lock_guard lock(task->mutex);
  StartFlow& flow = *task->start;
  flow.step_in_flight = false;
  if (flow.timed_out) {
    return fail_start(task, std::make_exception_ptr(Error(
                                ErrorKind::timeout, "runscope-shim did not start " + task->dir.string() + " in time")));
  }
  reactor_.rearm(flow.control_watch);
}

// Pool: the task runs; its record goes to the writer, and the caller is answered once it is durable.
void TaskManager::commit_start(const TaskPtr& task, pid_t task_pid) {
  auto next = [&] {
    std::lock_guard lock(task->mutex);
    TaskRecord r = task->record;
    r.shim_pid = task->start->shim_pid;
    return r;
  }();
  next.info.state = TaskState::running;
  next.info.pid = task_pid;
  next.info.started_at = std::chrono::system_clock::now();
  next.shim_start_time = driver::process_start_time(next.shim_pid).value_or(0);
  auto text = to_json_text(next);
  writer_.write(task->dir / kTaskFile, std::move(text), 0600, [this, task, next](std::exception_ptr error) {
    if (!error) return started(task, next);
    std::lock_guard lock(task->mutex);  // e.g. the state disk is full: the task goes
    pool_.post(task->owner, [this, task, error] { undo_start(task, error); });
  });
}

// Writer: the record is durable. The task is running from now on.
void TaskManager::started(const TaskPtr& task, TaskRecord record) {
  Reply<TaskId> reply;
  TaskEvent pending, running;
  {
    std::lock_guard lock(task->mutex);
    auto flow = std::move(task->start);
    task->record = std::move(record);
    task->shim_pidfd = flow->shim_pidfd;
    task->own_child = true;
    task->phase = Phase::running;
    auto folders = task->cg->folders();
    {
      std::lock_guard registry(registry_mutex_);
      task->folders = std::move(folders);
    }
    publish(*task);
    auto at = *task->record.info.started_at;
    pending = TaskEvent{TaskState::pending, at, {}, {}, false, ""};
    running = TaskEvent{TaskState::running, at, {}, {}, false, ""};
    record_event(*task, pending);
    record_event(*task, running);
    watch_shim(task);
    release_cgroup(*task);
    reply = std::move(flow->reply);
    advance(task);  // a stop asked for while it started
  }
  emit(task->id, pending);
  emit(task->id, running);
  reply(Outcome<TaskId>::success(task->id));
}

namespace {

// A shim whose task's exec did not fit in its memory limit says E2BIG (spawn.cpp's vfork child
// is never the OOM killer's pick); the cgroup's peak tells, as for `runscope exec`.
std::exception_ptr with_memory_limit_named(std::exception_ptr error, std::optional<std::uint64_t> memory_max,
                                           const cgroup::TaskCgroup* cg) noexcept {
  if (!cg || !memory_max) return error;
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    if (auto named = driver::exec_out_of_memory(e, memory_max, *cg)) return std::make_exception_ptr(*named);
  } catch (...) {
  }
  return error;
}

}  // namespace

// Pool (or shutdown): nothing of the task is left; the caller gets `error` (null: the shim left
// before it started the task, and how it ended says why, e.g. it could not join its home).
void TaskManager::undo_start(const TaskPtr& task, std::exception_ptr error) noexcept {
  std::unique_ptr<StartFlow> flow;
  std::vector<Reply<>> stops, destroys;
  std::optional<std::uint64_t> memory_max;
  {
    std::lock_guard lock(task->mutex);
    memory_max = task->record.info.spec.resources.memory_max;
    flow = std::move(task->start);
    task->phase = Phase::removed;
    stops.swap(task->end_waiters);
    destroys.swap(task->gone_waiters);
  }
  siginfo_t reaped{};
  if (flow) {
    reactor_.unwatch(flow->control_watch);
    reactor_.cancel(flow->deadline);
    if (flow->shim_pidfd) reaped = kill_and_reap(*flow->shim_pidfd);
  }
  if (!error) error = std::make_exception_ptr(shim_gone(reaped, task->cg ? task->cg->supervisor_home() : nullptr));
  error = with_memory_limit_named(std::move(error), memory_max, task->cg.get());  // while the cgroup is there
  task->cg.reset();  // kills whatever got in and removes the cgroup
  release_cpus(*task);
  std::error_code ec;
  fs::remove_all(task->dir, ec);
  erase(task);
  // Read before the reply: once the error is handed on, its receiver may be the one to free it.
  auto gone = std::make_exception_ptr(
      Error(ErrorKind::not_found, "task " + task->id.display() + " did not start: " + message_of(error)));
  try {
    if (flow && flow->reply) flow->reply(Outcome<TaskId>::failure(std::move(error)));
  } catch (...) {
    // The caller left; nothing else to undo.
  }
  answer_all(stops, Outcome<>::failure(gone));
  answer_all(destroys, Outcome<>::success());
}

}  // namespace runscope::daemon
