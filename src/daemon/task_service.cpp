#include "daemon/task_service.hpp"

#include <future>

#include "common/error.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {

UniqueFd TaskService::open_log(const TaskId& id, const std::string&, const Caller&) const {
  throw Error(ErrorKind::unsupported, "task " + id.display() + ": this service keeps no log files");
}

std::string to_string(TaskState state) {
  switch (state) {
    case TaskState::pending: return "pending";
    case TaskState::running: return "running";
    case TaskState::exited: return "exited";
    case TaskState::killed: return "killed";
    case TaskState::oom_killed: return "oom_killed";
    case TaskState::failed: return "failed";
    case TaskState::lost: return "lost";
  }
  return "unknown";
}

bool is_final(TaskState state) { return state != TaskState::pending && state != TaskState::running; }

nlohmann::json TaskInfo::to_json() const {
  using nlohmann::json;
  json j = {{"alloc", id.alloc()},
            {"task", id.task()},
            {"owner", owner},
            {"state", daemon::to_string(state)},
            {"pid", pid},
            {"manager", manager},
            {manager == "systemd" ? "unit" : "cgroup", location},
            {"cpus", cpus ? json(cpus->to_string()) : json(nullptr)},
            {"spec", driver::to_json(spec)}};
  // The verdict's keys, exactly as `runscope exec --status-file` writes them.
  j.update(driver::Verdict{exit_code, signal, oom_killed, started_at, finished_at, usage}.to_json());
  return j;
}

SpecSource SpecSource::of(driver::TaskSpec spec) {
  return SpecSource{[spec = std::move(spec)] { return spec; }, 0};
}

namespace {

template <typename T>
T wait_for(const std::function<void(Reply<T>)>& call) {
  auto promise = std::make_shared<std::promise<Outcome<T>>>();
  auto result = promise->get_future();
  call([promise](Outcome<T> outcome) { promise->set_value(std::move(outcome)); });
  return result.get().get();
}

}  // namespace

void TaskService::enter(const TaskId& id, EnterRequest, const Caller&, Reply<int> done) {
  done(Outcome<int>::failure(
      std::make_exception_ptr(Error(ErrorKind::unsupported, id.display() + ": this service cannot enter tasks"))));
}

int TaskService::enter(const TaskId& id, EnterRequest request, const Caller& caller) {
  return wait_for<int>([&](Reply<int> done) { enter(id, std::move(request), caller, std::move(done)); });
}

TaskId TaskService::start(const driver::TaskSpec& spec, const Caller& caller) {
  return wait_for<TaskId>([&](Reply<TaskId> done) { start(SpecSource::of(spec), caller, std::move(done)); });
}

void TaskService::stop(const TaskId& id, std::optional<Duration> timeout, const Caller& caller) {
  wait_for<std::monostate>([&](Reply<> done) { stop(id, timeout, caller, std::move(done)); });
}

void TaskService::destroy(const TaskId& id, const Caller& caller) {
  wait_for<std::monostate>([&](Reply<> done) { destroy(id, caller, std::move(done)); });
}

}  // namespace runscope::daemon
