// TaskManager: running a command inside a running task (EnterTask; docs/daemon.md, "Entering a
// task"). The request is admitted on the caller's thread (its own count of enters, apart from the
// short operations), the command is prepared and started on the StepPool (read the task's
// launch.json, resolve the user, fork), and its end is an event: the reactor watches its pidfd and
// answers with the exit code. No thread waits for the command.
//
// Where the command goes: exactly where the task's main process is, in every hierarchy
// (driver::cgroup_join_paths, as the journal forwarder joins it). The child writes "0" to each
// hierarchy's `tasks`/`cgroup.procs` before its first instruction, so nothing it forks starts
// outside. On systemd that file is the scope's own cgroup.procs: systemd counts a process by its
// cgroup, so the command is one of the scope's (stats, kill) with no bus call and no window in
// which it runs outside (AttachProcessesToUnit would move it after it started).
#include <algorithm>
#include <atomic>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/task_internal.hpp"
#include "driver/cgroup_join.hpp"
#include "driver/credentials.hpp"
#include "driver/shim_protocol.hpp"
#include "driver/spawn.hpp"

namespace runscope::daemon {

namespace fs = std::filesystem;

// One entered command, from admission to its answer. Answered exactly once: by its exit, by a
// failure to start it, or (when the service stops first and drops it) from the destructor, after
// which the command is killed with its Process.
struct TaskManager::EnterSession {
  Reply<int> reply;
  EnterRequest request;
  Caller caller;
  std::shared_ptr<Admission::Ticket> ticket;  // the caller's enter slot, until answered
  std::mutex mutex;
  driver::Process process;
  Reactor::Key watch = 0;
  std::atomic<bool> answered{false};

  void answer(Outcome<int> outcome) noexcept {
    if (answered.exchange(true)) return;
    ticket.reset();  // the slot is free by the time the caller hears back
    try {
      reply(std::move(outcome));
    } catch (...) {
      // A reply that throws has nobody left to tell.
    }
  }
  ~EnterSession() {
    answer(Outcome<int>::failure(std::make_exception_ptr(
        Error(ErrorKind::conflict, "runscoped is shutting down; the entered command was killed"))));
  }
};

namespace {

// The task's main process's cgroups, checked to be the task's own: every folder the daemon made
// for it must be among them (a pid reused by a stranger, or a main process that moved, fails).
std::vector<std::string> join_paths_of(const TaskId& id, pid_t pid, const cgroup::Folders& folders,
                                       const fs::path& proc_root) {
  if (pid <= 0 || folders.empty()) throw Error(ErrorKind::conflict, "task " + id.display() + " has no running main process");
  std::vector<std::string> paths;
  try {
    paths = driver::cgroup_join_paths(pid, proc_root);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::not_found) throw;
    throw Error(ErrorKind::conflict, "task " + id.display() + " has no running main process");
  }
  auto joined = [&](const fs::path& folder) {
    return std::any_of(paths.begin(), paths.end(), [&](const std::string& p) { return fs::path(p).parent_path() == folder; });
  };
  std::vector<fs::path> mine;
  if (!folders.unified.empty()) mine.push_back(folders.unified);
  for (const auto& [controller, folder] : folders.v1) mine.push_back(folder);
  for (const auto& folder : mine) {
    if (!joined(folder)) {
      throw Error(ErrorKind::conflict, "task " + id.display() + ": its main process (pid " + std::to_string(pid) +
                                           ") is not in the task's cgroup " + folder.string() + " any more");
    }
  }
  return paths;
}

// Who the command runs as: the task's user, or (root only) the user the spec names.
std::optional<driver::Credentials> enter_as(const driver::EnterSpec& spec, const Caller& caller,
                                            const std::optional<driver::Credentials>& task_user,
                                            const std::vector<uid_t>& denied) {
  std::optional<driver::Credentials> creds = task_user;
  const uid_t task_uid = task_user ? task_user->uid : 0;
  if (spec.user) {
    auto named = driver::resolve_credentials(*spec.user);
    if (!caller.is_root() && named.uid != task_uid) {
      throw Error(ErrorKind::permission, "user: a caller that is not root may enter a task only as the task's user (uid " +
                                             std::to_string(task_uid) + "), not as '" + *spec.user + "'");
    }
    creds = named;
  }
  const uid_t uid = creds ? creds->uid : 0;
  if (std::find(denied.begin(), denied.end(), uid) != denied.end()) {
    throw Error(ErrorKind::permission, "uid " + std::to_string(uid) + " is in [task] denied_uids");
  }
  return creds;
}

// The task's environment with the spec's variables over it (a spec's K replaces the task's K).
std::vector<std::string> enter_env(std::vector<std::string> env, const std::map<std::string, std::string>& extra) {
  for (const auto& [key, value] : extra) {
    const std::string prefix = key + "=";
    env.erase(std::remove_if(env.begin(), env.end(), [&](const std::string& e) { return e.rfind(prefix, 0) == 0; }),
              env.end());
    env.push_back(prefix + value);
  }
  return env;
}

}  // namespace

void TaskManager::enter(const TaskId& id, EnterRequest request, const Caller& caller, Reply<int> done) {
  auto session = std::make_shared<EnterSession>();
  session->reply = std::move(done);
  session->request = std::move(request);
  session->caller = caller;
  TaskPtr task;
  if (auto failure = failure_of([&] {
        check_serving();
        task = find(id, caller);  // before the slot: a stranger learns nothing, not even a bound
        if (!session->request.stdio) throw Error(ErrorKind::invalid_argument, "EnterTask: no descriptors given");
        session->ticket =
            enters_.admit(caller, kRequestWeight + driver::to_json_text(session->request.spec).size(), "EnterTask");
      })) {
    return session->answer(Outcome<int>::failure(std::move(failure)));
  }
  pool_.post(caller.uid, [this, session, task] { enter_step(session, task); });
}

// Pool: prepare and start the command; its end is the reactor's.
void TaskManager::enter_step(const std::shared_ptr<EnterSession>& session, const TaskPtr& task) {
  if (auto failure = failure_of([&] { enter_spawn(session, task); })) {
    session->answer(Outcome<int>::failure(std::move(failure)));
  }
}

void TaskManager::enter_spawn(const std::shared_ptr<EnterSession>& session, const TaskPtr& task) {
  std::shared_ptr<const TaskInfo> info;
  cgroup::Folders folders;
  {
    std::lock_guard lock(registry_mutex_);
    info = task->info;
    folders = task->folders;
  }
  if (info->state != TaskState::running) throw Error(ErrorKind::conflict, "task " + task->id.display() + " is not running");
  const auto launch = driver::parse_shim_launch(read_file(task->dir / driver::kLaunchFile));
  const driver::EnterSpec& spec = session->request.spec;
  driver::SpawnSpec spawn;
  spawn.argv.push_back(spec.command);
  spawn.argv.insert(spawn.argv.end(), spec.args.begin(), spec.args.end());
  spawn.env = enter_env(launch.env, spec.env);
  spawn.cwd = spec.cwd ? fs::path(*spec.cwd) : fs::path(launch.cwd);
  spawn.credentials = enter_as(spec, session->caller, launch.credentials, policy().denied_uids);
  const auto& fds = *session->request.stdio;
  spawn.stdio_fds = {fds[0].get(), fds[1].get(), fds[2].get()};
  spawn.controlling_terminal = spec.tty;
  driver::JoinOnlyCgroup where(join_paths_of(task->id, info->pid, folders, options_.proc_root));
  driver::Process process = driver::CloneSpawner().spawn(spawn, &where);
  std::lock_guard lock(session->mutex);
  session->process = std::move(process);
  session->watch = reactor_.watch(session->process.pidfd(), [this, session] {
    std::lock_guard lock(session->mutex);
    reactor_.unwatch(session->watch);  // drops this callback's hold on the session
    session->answer(Outcome<int>::success(session->process.reap().shell_code()));
  });
}

}  // namespace runscope::daemon
