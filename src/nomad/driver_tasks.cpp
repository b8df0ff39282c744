// The Driver service's unary task calls: start, recover, wait, stop, destroy, inspect, signal.
#include <signal.h>

#include <condition_variable>
#include <mutex>

#include "common/error.hpp"
#include "config/config.hpp"
#include "nomad/cty_msgpack.hpp"
#include "nomad/driver_service.hpp"
#include "nomad/log.hpp"
#include "nomad/status.hpp"

namespace runscope::nomad {
namespace {

constexpr auto kRecheck = std::chrono::seconds(1);
constexpr auto kForever = std::chrono::hours(24 * 365);
// runscoped's StopTask takes 0 as "the task's own kill_timeout": the shortest real grace instead.
constexpr auto kNoGrace = std::chrono::milliseconds(1);

}  // namespace

bool DriverService::abandoned(grpc::ServerContext* context) const {
  return lifetime_.stopping() || (context != nullptr && context->IsCancelled());
}

std::optional<TaskView> DriverService::wait_final(const DaemonLink& link, const TaskId& id,
                                                  std::chrono::nanoseconds budget, grpc::ServerContext* context) {
  std::mutex mutex;
  std::condition_variable cv;
  bool changed = false;
  auto sub = link.feed->subscribe([&](const api::StateChange& c) {
    if (c.alloc != id.alloc() || c.task != id.task() || !is_final_state(c.state)) return;
    std::lock_guard lock(mutex);
    changed = true;
    cv.notify_all();
  });
  auto deadline = std::chrono::steady_clock::now() + budget;
  while (true) {
    try {
      auto view = task_view(link.daemon->inspect(id));
      if (view.final()) return view;
    } catch (const Error& e) {
      // runscoped restarting (an upgrade) leaves its tasks running: a wait outlives it.
      if (e.kind() != ErrorKind::bus) throw;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || abandoned(context)) return std::nullopt;
    std::unique_lock lock(mutex);
    cv.wait_for(lock, std::min<std::chrono::nanoseconds>(kRecheck, deadline - now), [&] { return changed; });
    changed = false;
  }
}

TaskId DriverService::start_in_daemon(const DaemonLink& link, const std::string& task_id, const TaskId& id,
                                      const std::string& spec_json) {
  try {
    return link.daemon->start(spec_json);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::conflict) throw;
    // Nomad restarts a task under the same alloc and name; an exited one of an earlier run (whose
    // DestroyTask never came, e.g. the plugin was down) would block the name. A live one stays.
    TaskView old;
    try {
      old = task_view(link.daemon->inspect(id));
    } catch (const Error&) {
      throw e;
    }
    if (!old.final() || tasks_.held_by_other(id, task_id)) throw;
    log(LogLevel::info, "destroying an earlier, ended run of the task", {{"task", id.display()}});
    link.daemon->destroy(id);
    return link.daemon->start(spec_json);
  }
}

grpc::Status DriverService::StartTask(grpc::ServerContext*, const proto::StartTaskRequest* in,
                                      proto::StartTaskResponse* out) {
  return answer(
      [&] {
        const auto& task = in->task();
        auto config = parse_task_config(decode_cty_msgpack(task.msgpack_driver_config(), "task config"));
        auto id = task_id_of(task);
        std::string spec;
        try {
          spec = runscope_spec(task, config).dump();
        } catch (const nlohmann::json::exception&) {
          throw Error(ErrorKind::invalid_argument, "task " + task.id() + ": a name, argument or variable is not UTF-8");
        }
        auto link = state_.link();
        // Known before it starts, so the state changes it makes while starting reach TaskEvents.
        tasks_.put(task.id(), {id, task, config.kill_signal});
        try {
          start_in_daemon(link, task.id(), id, spec);
        } catch (...) {
          tasks_.erase(task.id());
          throw;
        }
        auto* handle = out->mutable_handle();
        handle->set_version(1);
        *handle->mutable_config() = task;
        handle->set_state(proto::RUNNING);
        handle->set_driver_state(encode_driver_state({id, config.kill_signal}));
        out->set_result(proto::StartTaskResponse::SUCCESS);
        log(LogLevel::info, "task started", {{"task_id", task.id()}, {"runscope", id.display()}});
        return grpc::Status::OK;
      },
      true);
}

grpc::Status DriverService::RecoverTask(grpc::ServerContext*, const proto::RecoverTaskRequest* in,
                                        proto::RecoverTaskResponse*) {
  return answer([&] {
    if (tasks_.contains(in->task_id())) return grpc::Status::OK;
    auto state = decode_driver_state(in->handle().driver_state());
    try {
      state_.link().daemon->inspect(state.id);  // NotFound: runscoped no longer has it
    } catch (const Error& e) {
      // runscoped away (restarting): its tasks still run; take the handle, later calls will tell.
      if (e.kind() != ErrorKind::bus) throw;
      log(LogLevel::warn, "recovering without runscoped's answer", {{"task_id", in->task_id()}, {"error", e.what()}});
    }
    tasks_.put(in->task_id(), {state.id, in->handle().config(), state.kill_signal});
    log(LogLevel::info, "task recovered", {{"task_id", in->task_id()}, {"runscope", state.id.display()}});
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::WaitTask(grpc::ServerContext* context, const proto::WaitTaskRequest* in,
                                     proto::WaitTaskResponse* out) {
  return answer([&] {
    auto record = tasks_.get(in->task_id());
    auto view = wait_final(state_.link(), record.id, kForever, context);
    if (!view) return grpc::Status(grpc::StatusCode::CANCELLED, "the wait was cancelled or the plugin is stopping");
    *out->mutable_result() = exit_result(*view);
    if (view->state == "failed" || view->state == "lost") {
      out->set_err("runscope reports the task as " + view->state + " (docs/daemon.md)");
    }
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::StopTask(grpc::ServerContext* context, const proto::StopTaskRequest* in,
                                     proto::StopTaskResponse*) {
  return answer([&] {
    auto record = tasks_.get(in->task_id());
    auto link = state_.link();
    if (task_view(link.daemon->inspect(record.id)).final()) return grpc::Status::OK;
    std::chrono::nanoseconds timeout = to_duration(in->timeout());
    auto sig = in->signal().empty() ? std::optional<int>() : std::optional(config::parse_signal(in->signal()));
    try {
      if (sig && sig != record.kill_signal.value_or(SIGTERM)) {
        // Not the task's kill signal: send it, give it the grace period, then kill the cgroup.
        link.daemon->signal(record.id, *sig);
        if (wait_final(link, record.id, timeout, context)) return grpc::Status::OK;
        link.daemon->stop(record.id, kNoGrace);
      } else {
        link.daemon->stop(record.id, std::max<std::chrono::nanoseconds>(timeout, kNoGrace));
      }
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::conflict) throw;  // conflict: it ended meanwhile
    }
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::DestroyTask(grpc::ServerContext*, const proto::DestroyTaskRequest* in,
                                        proto::DestroyTaskResponse*) {
  return answer([&] {
    if (!tasks_.contains(in->task_id())) return grpc::Status::OK;  // destroying twice is fine
    auto record = tasks_.get(in->task_id());
    auto link = state_.link();
    try {
      if (!in->force() && !task_view(link.daemon->inspect(record.id)).final()) {
        throw Error(ErrorKind::conflict, "task " + in->task_id() + " is still running: stop it first, or destroy with force");
      }
      link.daemon->destroy(record.id);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::not_found) throw;
    }
    tasks_.erase(in->task_id());
    log(LogLevel::info, "task destroyed", {{"task_id", in->task_id()}});
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::InspectTask(grpc::ServerContext*, const proto::InspectTaskRequest* in,
                                        proto::InspectTaskResponse* out) {
  return answer([&] {
    auto record = tasks_.get(in->task_id());
    auto inspected = state_.link().daemon->inspect(record.id);
    auto view = task_view(inspected);
    *out->mutable_task() = task_status(in->task_id(), record.config.name(), view);
    auto& attrs = *out->mutable_driver()->mutable_attributes();
    attrs["runscope.alloc"] = record.id.alloc();
    attrs["runscope.task"] = record.id.task();
    attrs["runscope.state"] = view.state;
    attrs["pid"] = std::to_string(view.pid);
    for (const char* key : {"manager", "unit", "cgroup"}) {
      if (inspected.contains(key) && inspected[key].is_string()) attrs[std::string("runscope.") + key] = inspected[key];
    }
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::SignalTask(grpc::ServerContext*, const proto::SignalTaskRequest* in,
                                       proto::SignalTaskResponse*) {
  return answer([&] {
    auto record = tasks_.get(in->task_id());
    state_.link().daemon->signal(record.id, config::parse_signal(in->signal()));
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::CreateNetwork(grpc::ServerContext*, const proto::CreateNetworkRequest*,
                                          proto::CreateNetworkResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "runscope tasks share the host's network");
}

grpc::Status DriverService::DestroyNetwork(grpc::ServerContext*, const proto::DestroyNetworkRequest*,
                                           proto::DestroyNetworkResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "runscope tasks share the host's network");
}

}  // namespace runscope::nomad
