#include "api/manager_object.hpp"

#include <pwd.h>

#include <spdlog/spdlog.h>

#include "api/errors.hpp"
#include "api/json_views.hpp"
#include "common/error.hpp"
#include "compat/sdbus.hpp"

namespace runscope::api {
namespace {

// Runs `body`, turning any exception into the named D-Bus error the caller will see.
template <typename Body>
auto answer(Body body) {
  try {
    return body();
  } catch (const sdbus::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw to_bus_error(e);
  }
}

TaskId task_id(const std::string& alloc, const std::string& task) { return TaskId(alloc, task); }

// sd-bus may not know a peer's gid (dbus-daemon reports uid and pid); the user's primary group
// is the gid its tasks would get anyway.
gid_t primary_gid(uid_t uid) {
  passwd pw{}, *found = nullptr;
  char buf[4096];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) return pw.pw_gid;
  return static_cast<gid_t>(-1);
}

}  // namespace

sdbus::Error to_bus_error(const std::exception& error) {
  if (auto* e = dynamic_cast<const Error*>(&error)) return compat::make_error(error_name(e->kind()), e->what());
  return compat::make_error(error_name(ErrorKind::system), error.what());
}

namespace {
// Far more than a burst of state changes can produce before the emitter thread catches up.
constexpr std::size_t kMaxQueuedSignals = 65536;
}  // namespace

ManagerObject::ManagerObject(sdbus::IConnection& connection, daemon::TaskService& service, SpecParser parse_spec,
                             ManagerObjectOptions options)
    : AdaptorInterfaces(connection, sdbus::ObjectPath(kObjectPath)),
      service_(service),
      parse_spec_(std::move(parse_spec)),
      pool_(options.workers, options.max_queued),
      signals_(1, kMaxQueuedSignals) {
  registerAdaptor();
  subscription_ = service_.subscribe([this](const TaskId& id, const daemon::TaskEvent& e) { on_event(id, e); });
}

ManagerObject::~ManagerObject() {
  subscription_.reset();  // no more events
  signals_.shutdown();    // no more signals: queued ones are dropped
  unregisterAdaptor();    // no more calls
  pool_.shutdown();       // queued calls answered with an error, running ones finish and reply
}

daemon::Caller ManagerObject::caller() const {
  return compat::with_current_message(getObject(), [](const sdbus::Message& message) {
    daemon::Caller who;
    try {
      who.uid = message.getCredsUid();
    } catch (const sdbus::Error& e) {
      // Without a uid there is no caller to act for: refuse rather than guess.
      throw Error(ErrorKind::permission, "cannot tell who sent the call: " + e.getMessage());
    }
    try {
      who.gid = message.getCredsGid();
    } catch (const sdbus::Error&) {
      who.gid = primary_gid(who.uid);
    }
    return who;
  });
}

template <typename Result, typename Work, typename Reply>
void ManagerObject::submit(Result&& result, Work work, Reply reply) {
  auto shared = std::make_shared<std::decay_t<Result>>(std::move(result));
  WorkerPool::Job job;
  job.run = [shared, work = std::move(work), reply = std::move(reply)]() mutable {
    try {
      reply(*shared, work());
    } catch (const sdbus::Error& e) {
      shared->returnError(e);
    } catch (const std::exception& e) {
      shared->returnError(to_bus_error(e));
    }
  };
  job.cancel = [shared] {
    shared->returnError(compat::make_error(error_name(ErrorKind::system), "runscoped is shutting down"));
  };
  if (!pool_.submit(std::move(job))) {
    shared->returnError(compat::make_error(error_name(ErrorKind::resources), "too many requests in flight; retry later"));
  }
}

void ManagerObject::StartTask(sdbus::Result<std::string, std::string>&& result, std::string spec_json) {
  auto who = answer([&] { return caller(); });
  submit(
      std::move(result),
      [this, who, json = std::move(spec_json)] { return service_.start(parse_spec_(json), who); },
      [](auto& r, const TaskId& id) { r.returnResults(id.alloc(), id.task()); });
}

void ManagerObject::StopTask(sdbus::Result<>&& result, std::string alloc, std::string task, uint64_t timeout_usec) {
  auto who = answer([&] { return caller(); });
  auto id = answer([&] { return task_id(alloc, task); });
  std::optional<Duration> timeout;
  if (timeout_usec != 0) timeout = std::chrono::microseconds(timeout_usec);
  submit(
      std::move(result),
      [this, who, id, timeout] {
        service_.stop(id, timeout, who);
        return 0;
      },
      [](auto& r, int) { r.returnResults(); });
}

void ManagerObject::SignalTask(const std::string& alloc, const std::string& task, const int32_t& signal) {
  answer([&] { service_.signal(task_id(alloc, task), signal, caller()); });
}

void ManagerObject::DestroyTask(sdbus::Result<>&& result, std::string alloc, std::string task) {
  auto who = answer([&] { return caller(); });
  auto id = answer([&] { return task_id(alloc, task); });
  submit(
      std::move(result),
      [this, who, id] {
        service_.destroy(id, who);
        return 0;
      },
      [](auto& r, int) { r.returnResults(); });
}

std::string ManagerObject::InspectTask(const std::string& alloc, const std::string& task) {
  return answer([&] { return service_.inspect(task_id(alloc, task), caller()).to_json().dump(); });
}

std::vector<sdbus::Struct<std::string, std::string, std::string, uint32_t>> ManagerObject::ListTasks() {
  return answer([&] {
    std::vector<sdbus::Struct<std::string, std::string, std::string, uint32_t>> out;
    for (const auto& info : service_.list(caller())) {
      out.emplace_back(info.id.alloc(), info.id.task(), daemon::to_string(info.state),
                       static_cast<uint32_t>(info.pid));
    }
    return out;
  });
}

std::map<std::string, uint64_t> ManagerObject::TaskStats(const std::string& alloc, const std::string& task) {
  return answer([&] { return stats_map(service_.stats(task_id(alloc, task), caller())); });
}

std::string ManagerObject::TaskEvents(const std::string& alloc, const std::string& task) {
  return answer([&] { return events_json(service_.events(task_id(alloc, task), caller())).dump(); });
}

std::string ManagerObject::TaskLogs(const std::string& alloc, const std::string& task) {
  return answer([&] { return logs_json(service_.logs(task_id(alloc, task), caller())).dump(); });
}

std::map<std::string, std::string> ManagerObject::Fingerprint() {
  return answer([&] { return service_.fingerprint(); });
}

std::string ManagerObject::CpuPool() {
  return answer([&] { return pool_json(service_.cpu_pool()).dump(); });
}

std::string ManagerObject::Version() { return RUNSCOPE_VERSION; }

void ManagerObject::on_event(const TaskId& id, const daemon::TaskEvent& event) {
  auto emit = [this, id, event] {
    try {
      emitTaskStateChanged(id.alloc(), id.task(), daemon::to_string(event.state), event.exit_code.value_or(-1),
                           event.signal.value_or(0), event.oom_killed);
    } catch (const std::exception& e) {
      spdlog::warn("could not emit TaskStateChanged for {}: {}", id.display(), e.what());
    }
  };
  if (!signals_.submit({emit, [] {}})) {
    spdlog::warn("TaskStateChanged for {} dropped: {} signals already queued", id.display(), kMaxQueuedSignals);
  }
}

}  // namespace runscope::api
