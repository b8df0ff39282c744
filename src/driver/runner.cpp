#include "driver/runner.hpp"

#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>

#include "common/error.hpp"
#include "common/units.hpp"
#include "driver/task_compile.hpp"

namespace runscope::driver {
namespace {

// How often the no_cgroups cleanup looks whether the process group is gone.
constexpr std::chrono::milliseconds kGroupPollInterval{2};

bool process_group_exists(pid_t pgid) { return ::kill(-pgid, 0) == 0 || errno == EPERM; }

// Zombies of the group that were reparented to us (when we are a child subreaper) would keep the
// group "existing" until we reap them; PID 1 reaps the others.
void reap_group_zombies(pid_t pgid) {
  siginfo_t info{};
  while (::waitid(P_PGID, static_cast<id_t>(pgid), &info, WEXITED | WNOHANG) == 0 && info.si_pid != 0) {
    info = {};
  }
}

}  // namespace

RunningTask::RunningTask(TaskId id, KillPolicy kill, Clock& clock, Duration cleanup_timeout,
                         std::unique_ptr<cgroup::TaskCgroup> cg, Process main)
    : id_(std::move(id)),
      kill_(kill),
      clock_(&clock),
      cleanup_timeout_(cleanup_timeout),
      cgroup_(std::move(cg)),
      main_(std::move(main)) {}

RunningTask::~RunningTask() {
  if (result_) return;
  try {
    main_.signal(SIGKILL);
    finish();
  } catch (const std::exception& e) {
    spdlog::error("task {}: cleanup failed: {}", id_.display(), e.what());
  }
}

std::string RunningTask::location() const {
  if (cgroup_) return cgroup_->location();
  return "process group " + std::to_string(main_.pid());
}

std::optional<ExitStatus> RunningTask::wait(const Deadline& deadline) {
  if (result_) return result_;
  if (!main_.wait_exited(deadline)) return std::nullopt;
  return finish();
}

ExitStatus RunningTask::wait() {
  if (result_) return *result_;
  // Not reaped here: in no_cgroups mode the zombie must hold the process group id until the
  // group is killed.
  while (!main_.wait_exited(Deadline(*clock_, std::chrono::hours(1)))) {
  }
  return finish();
}

ExitStatus RunningTask::stop() {
  if (result_) return *result_;
  main_.wait_exited(begin_stop());
  return finish();
}

Deadline RunningTask::begin_stop() {
  stop_requested_ = true;
  spdlog::info("task {}: stopping with {} (timeout {})", id_.display(), kill_.signal,
               format_duration(kill_.timeout));
  if (!result_ && main_.signal(kill_.signal) && kill_.signal != SIGCONT && kill_.signal != SIGKILL) {
    main_.signal(SIGCONT);
  }
  return Deadline(*clock_, kill_.timeout);
}

ExitStatus RunningTask::kill_now() {
  stop_requested_ = true;
  if (result_) return *result_;
  return finish();
}

bool RunningTask::signal_main(int sig) { return !result_ && main_.signal(sig); }

bool RunningTask::signal_group(int sig) {
  if (result_ || main_.reaped()) return false;
  return ::kill(-main_.pid(), sig) == 0;
}

Verdict RunningTask::verdict() const {
  if (!result_) throw Error(ErrorKind::conflict, "task " + id_.display() + " has not ended yet");
  return make_verdict(*result_, usage_, started_at_, finished_at_);
}

// The main process has ended, or is to be killed now: SIGKILL whatever is left, remove the
// cgroup. In no_cgroups mode the group is killed while the main process is still an unreaped
// zombie, so its pid (the process group id) cannot have been reused.
ExitStatus RunningTask::finish() {
  Deadline deadline(*clock_, cleanup_timeout_);
  if (!cgroup_) {
    kill_process_group(deadline);
  } else {
    main_.signal(SIGKILL);
  }
  auto status = main_.wait(deadline);
  if (!status) {
    throw Error(ErrorKind::timeout, "task " + id_.display() + ": main process " + std::to_string(main_.pid()) +
                                        " did not end after SIGKILL");
  }
  finished_at_ = std::chrono::system_clock::now();
  if (cgroup_) {
    try {
      usage_ = cgroup_->stats();  // the last chance: the counters go with the cgroup
    } catch (const std::exception& e) {
      spdlog::warn("task {}: reading its cgroup's counters: {}", id_.display(), e.what());
    }
    cgroup_->destroy(deadline);
  }
  result_ = *status;
  spdlog::info("task {}: ended with {}", id_.display(), status->describe());
  return *status;
}

void RunningTask::kill_process_group(const Deadline& deadline) {
  const pid_t pgid = main_.pid();
  ::kill(-pgid, SIGKILL);
  main_.reap();
  for (reap_group_zombies(pgid); process_group_exists(pgid); reap_group_zombies(pgid)) {
    if (deadline.expired()) {
      throw Error(ErrorKind::timeout, "task " + id_.display() + ": process group " + std::to_string(pgid) +
                                          " still has members after SIGKILL");
    }
    ::kill(-pgid, SIGKILL);
    clock_->sleep_for(kGroupPollInterval);
  }
}

Runner::Runner(cgroup::Backend* backend, Spawner& spawner, Clock& clock, RunnerOptions options)
    : backend_(backend), spawner_(&spawner), clock_(&clock), options_(std::move(options)) {}

void Runner::check_uid(const SpawnSpec& spec) const {
  check_uid_allowed(spec.credentials ? spec.credentials->uid : ::geteuid(), options_.denied_uids);
}

std::optional<Error> exec_out_of_memory(const Error& e, std::optional<std::uint64_t> memory_max,
                                        const cgroup::TaskCgroup& cg) {
  if (!memory_max || (e.error_number() != E2BIG && e.error_number() != ENOMEM)) return std::nullopt;
  constexpr std::uint64_t kSlack = 64 * 1024;  // the limit as the kernel rounds it, less a charge
  std::optional<std::uint64_t> peak;
  try {
    peak = cg.stats().memory_peak;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (!peak || *peak + kSlack < *memory_max) return std::nullopt;
  return Error(e.kind(),
               std::string(e.what()) + ": the program's arguments and environment do not fit in the task's memory limit (" +
                   format_size(*memory_max) + ")",
               e.error_number());
}

void Runner::remove_unstarted(const TaskId& id, cgroup::TaskCgroup* cg) const {
  if (!cg) return;
  try {
    cg->destroy(Deadline(*clock_, options_.cleanup_timeout));
  } catch (const std::exception& e) {
    spdlog::error("task {}: removing its cgroup after a failed start: {}", id.display(), e.what());
  }
}

std::unique_ptr<RunningTask> Runner::start(const TaskId& id, const cgroup::Limits& limits, const SpawnSpec& spec,
                                           const KillPolicy& kill) {
  check_uid(spec);
  if (!backend_ && !limits.empty()) {
    throw Error(ErrorKind::unsupported, "task " + id.display() +
                                            ": limits (memory, cpu weight, pids, cpuset) need cgroups; "
                                            "they cannot be applied in no_cgroups mode");
  }
  std::unique_ptr<cgroup::TaskCgroup> cg = backend_ ? backend_->create(id, limits) : nullptr;
  Process main;
  try {
    main = spawner_->spawn(spec, cg.get());
  } catch (const Error& e) {
    const auto named = cg ? exec_out_of_memory(e, limits.memory_max, *cg) : std::nullopt;
    remove_unstarted(id, cg.get());
    if (named) throw *named;
    throw;
  } catch (...) {
    remove_unstarted(id, cg.get());
    throw;
  }
  spdlog::info("task {}: started pid {} in {}", id.display(), main.pid(),
               cg ? cg->location() : "its own process group (no cgroups)");
  return std::unique_ptr<RunningTask>(
      new RunningTask(id, kill, *clock_, options_.cleanup_timeout, std::move(cg), std::move(main)));
}

}  // namespace runscope::driver
