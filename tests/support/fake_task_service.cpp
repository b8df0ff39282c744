#include "support/fake_task_service.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace runscope::testing {

class FakeSubscription final : public daemon::Subscription {
 public:
  FakeSubscription(FakeTaskService& service, std::uint64_t key) : service_(service), key_(key) {}
  ~FakeSubscription() override {
    std::lock_guard lock(service_.listeners_mutex_);
    service_.listeners_.erase(key_);
  }

 private:
  FakeTaskService& service_;
  std::uint64_t key_;
};

namespace {

bool may_see(const daemon::TaskInfo& info, const daemon::Caller& caller) {
  return caller.is_root() || info.owner == caller.uid;
}

}  // namespace

void FakeTaskService::start(daemon::SpecSource source, const daemon::Caller& caller, daemon::Reply<TaskId> done) {
  auto run = [this, source = std::move(source), caller, done] {
    try {
      done(daemon::Outcome<TaskId>::success(do_start(source.parse(), caller)));
    } catch (...) {
      done(daemon::Outcome<TaskId>::failure(std::current_exception()));
    }
  };
  {
    std::lock_guard lock(mutex_);
    if (held_) {
      held_starts_.push_back(std::move(run));
      return;
    }
  }
  run();
}

TaskId FakeTaskService::do_start(const driver::TaskSpec& spec, const daemon::Caller& caller) {
  std::unique_lock lock(mutex_);
  last_caller_ = caller;
  last_spec_ = spec;
  if (next_start_error_) {
    auto e = *next_start_error_;
    next_start_error_.reset();
    throw e;
  }
  if (!caller.is_root() && spec.user && *spec.user != std::to_string(caller.uid)) {
    throw Error(ErrorKind::permission, "user: '" + *spec.user + "' is not the caller");
  }
  TaskId id(spec.alloc.value_or(random_uuid()), spec.task);
  if (tasks_.count(id) != 0) throw Error(ErrorKind::conflict, "task " + id.display() + " already exists");
  Task task{daemon::TaskInfo{id, 0, daemon::TaskState::pending, 0, "", "", {}, {}, false, {}, {}, {}, {}, {}}, {}};
  task.info.owner = caller.uid;
  task.info.pid = next_pid_++;
  task.info.manager = "cgroupfs";
  task.info.location = "/fake/" + id.cgroup_name();
  task.info.started_at = std::chrono::system_clock::now();
  task.info.spec = spec;
  task.info.state = daemon::TaskState::running;
  auto& stored = tasks_.emplace(id, std::move(task)).first->second;
  record(stored, {daemon::TaskState::running, std::chrono::system_clock::now(), {}, {}, false, ""}, lock);
  return id;
}

void FakeTaskService::stop(const TaskId& id, std::optional<Duration> timeout, const daemon::Caller& caller,
                           daemon::Reply<> done) {
  try {
    std::unique_lock lock(mutex_);
    last_stop_timeout_ = timeout;
    auto& task = find(id, caller);
    if (!daemon::is_final(task.info.state)) {
      task.info.state = daemon::TaskState::killed;
      task.info.signal = 15;
      task.info.pid = 0;
      task.info.finished_at = std::chrono::system_clock::now();
      record(task, {daemon::TaskState::killed, *task.info.finished_at, {}, 15, false, ""}, lock);
    }
  } catch (...) {
    done(daemon::Outcome<>::failure(std::current_exception()));
    return;
  }
  done(daemon::Outcome<>::success());
}

void FakeTaskService::signal(const TaskId& id, int sig, const daemon::Caller& caller) {
  std::lock_guard lock(mutex_);
  auto& task = find(id, caller);
  if (daemon::is_final(task.info.state)) throw Error(ErrorKind::conflict, id.display() + " is not running");
  signals_.emplace_back(id, sig);
}

void FakeTaskService::destroy(const TaskId& id, const daemon::Caller& caller, daemon::Reply<> done) {
  try {
    std::lock_guard lock(mutex_);
    find(id, caller);
    tasks_.erase(id);
  } catch (...) {
    done(daemon::Outcome<>::failure(std::current_exception()));
    return;
  }
  done(daemon::Outcome<>::success());
}

void FakeTaskService::enter(const TaskId& id, daemon::EnterRequest request, const daemon::Caller& caller,
                            daemon::Reply<int> done) {
  try {
    std::lock_guard lock(mutex_);
    auto& task = find(id, caller);
    if (daemon::is_final(task.info.state)) throw Error(ErrorKind::conflict, id.display() + " is not running");
    last_caller_ = caller;
  } catch (...) {
    done(daemon::Outcome<int>::failure(std::current_exception()));
    return;
  }
  std::string line = "entered " + request.spec.command;
  for (const auto& a : request.spec.args) line += " " + a;
  line += "\n";
  (void)!::write((*request.stdio)[1].get(), line.data(), line.size());
  auto status = request.spec.env.count("STATUS") ? std::stoi(request.spec.env.at("STATUS")) : 0;
  done(daemon::Outcome<int>::success(status));
}

daemon::TaskInfo FakeTaskService::inspect(const TaskId& id, const daemon::Caller& caller) const {
  std::lock_guard lock(mutex_);
  return find(id, caller).info;
}

std::vector<daemon::TaskInfo> FakeTaskService::list(const daemon::Caller& caller) const {
  std::lock_guard lock(mutex_);
  std::vector<daemon::TaskInfo> out;
  for (const auto& [id, task] : tasks_) {
    if (may_see(task.info, caller)) out.push_back(task.info);
  }
  return out;
}

cgroup::Stats FakeTaskService::stats(const TaskId& id, const daemon::Caller& caller) const {
  std::lock_guard lock(mutex_);
  find(id, caller);
  cgroup::Stats s;
  s.cpu_user = std::chrono::microseconds(1500);
  s.cpu_system = std::chrono::microseconds(500);
  s.memory_current = 4096;
  s.pids_current = 1;
  return s;
}

std::vector<daemon::TaskEvent> FakeTaskService::events(const TaskId& id, const daemon::Caller& caller) const {
  std::lock_guard lock(mutex_);
  return find(id, caller).events;
}

daemon::LogInfo FakeTaskService::logs(const TaskId& id, const daemon::Caller& caller) const {
  std::lock_guard lock(mutex_);
  find(id, caller);
  daemon::LogInfo info;
  info.target = "file";
  info.stdout_path = (log_dir / (id.cgroup_name() + ".stdout")).string();
  info.stderr_path = (log_dir / (id.cgroup_name() + ".stderr")).string();
  return info;
}

UniqueFd FakeTaskService::open_log(const TaskId& id, const std::string& stream, const daemon::Caller& caller) const {
  auto info = logs(id, caller);
  const std::string& path = stream == "stdout" ? *info.stdout_path : *info.stderr_path;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw Error(ErrorKind::not_found, "no " + stream + " log yet");
  return fd;
}

daemon::CpuPoolInfo FakeTaskService::cpu_pool() const {
  std::lock_guard lock(mutex_);
  daemon::CpuPoolInfo pool{CpuSet::parse("1-3"), CpuSet::parse("0"), CpuSet::parse("0,2-3"), {}};
  pool.reservations.emplace_back(TaskId("a1", "web"), CpuSet::parse("1"));
  return pool;
}

void FakeTaskService::wedge() {
  std::lock_guard lock(mutex_);
  wedged_ = true;
}

void FakeTaskService::unwedge() {
  {
    std::lock_guard lock(mutex_);
    wedged_ = false;
  }
  unwedged_.notify_all();
}

bool FakeTaskService::wedged_call_waiting() const {
  std::lock_guard lock(mutex_);
  return wedge_waiting_;
}

std::map<std::string, std::string> FakeTaskService::fingerprint() const {
  {
    std::unique_lock lock(mutex_);
    auto* self = const_cast<FakeTaskService*>(this);
    self->wedge_waiting_ = wedged_;
    unwedged_.wait(lock, [this] { return !wedged_; });
    self->wedge_waiting_ = false;
  }
  return {{"driver.raw_exec", "1"}, {"cgroup.version", "fake"}};
}

std::unique_ptr<daemon::Subscription> FakeTaskService::subscribe(Listener listener) {
  std::lock_guard lock(listeners_mutex_);
  auto key = next_listener_++;
  listeners_.emplace(key, std::move(listener));
  return std::make_unique<FakeSubscription>(*this, key);
}

void FakeTaskService::finish(const TaskId& id, int exit_code) {
  std::unique_lock lock(mutex_);
  auto& task = tasks_.at(id);
  task.info.state = daemon::TaskState::exited;
  task.info.exit_code = exit_code;
  task.info.pid = 0;
  task.info.finished_at = std::chrono::system_clock::now();
  record(task, {daemon::TaskState::exited, *task.info.finished_at, exit_code, {}, false, ""}, lock);
}

void FakeTaskService::fail_next_start(Error error) {
  std::lock_guard lock(mutex_);
  next_start_error_ = std::move(error);
}

void FakeTaskService::hold_starts() {
  std::lock_guard lock(mutex_);
  held_ = true;
}

void FakeTaskService::release_starts() {
  std::vector<std::function<void()>> held;
  {
    std::lock_guard lock(mutex_);
    held_ = false;
    held.swap(held_starts_);
  }
  for (auto& run : held) run();
}

std::size_t FakeTaskService::waiting_starts() const {
  std::lock_guard lock(mutex_);
  return held_starts_.size();
}

std::size_t FakeTaskService::subscribers() const {
  std::lock_guard lock(listeners_mutex_);
  return listeners_.size();
}

std::optional<daemon::Caller> FakeTaskService::last_caller() const {
  std::lock_guard lock(mutex_);
  return last_caller_;
}

std::optional<driver::TaskSpec> FakeTaskService::last_spec() const {
  std::lock_guard lock(mutex_);
  return last_spec_;
}

std::vector<std::pair<TaskId, int>> FakeTaskService::signals_sent() const {
  std::lock_guard lock(mutex_);
  return signals_;
}

std::optional<Duration> FakeTaskService::last_stop_timeout() const {
  std::lock_guard lock(mutex_);
  return last_stop_timeout_;
}

FakeTaskService::Task& FakeTaskService::find(const TaskId& id, const daemon::Caller& caller) {
  auto it = tasks_.find(id);
  if (it == tasks_.end() || !may_see(it->second.info, caller)) {
    throw Error(ErrorKind::not_found, "no task " + id.display());
  }
  return it->second;
}

const FakeTaskService::Task& FakeTaskService::find(const TaskId& id, const daemon::Caller& caller) const {
  return const_cast<FakeTaskService*>(this)->find(id, caller);
}

void FakeTaskService::record(Task& task, daemon::TaskEvent event, std::unique_lock<std::mutex>& lock) {
  task.events.push_back(event);
  TaskId id = task.info.id;
  // Listeners run outside the registry lock (as a real service would) but under the listener
  // lock, so a Subscription's destructor waits for a running callback.
  lock.unlock();
  {
    std::lock_guard listeners(listeners_mutex_);
    for (auto& [key, listener] : listeners_) listener(id, event);
  }
  lock.lock();
}

driver::TaskSpec parse_test_spec(std::string_view json) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::invalid_argument, std::string("spec: not JSON: ") + e.what());
  }
  driver::TaskSpec spec;
  for (const auto& [key, value] : j.items()) {
    if (key == "alloc") spec.alloc = value.get<std::string>();
    else if (key == "task") spec.task = value.get<std::string>();
    else if (key == "config") spec.config = value;
    else if (key == "user") spec.user = value.get<std::string>();
    else if (key == "driver" || key == "env" || key == "resources" || key == "kill_signal" || key == "kill_timeout" || key == "log") continue;
    else throw Error(ErrorKind::invalid_argument, key + ": unknown field");
  }
  if (spec.task.empty()) throw Error(ErrorKind::invalid_argument, "task: required");
  return spec;
}

}  // namespace runscope::testing
