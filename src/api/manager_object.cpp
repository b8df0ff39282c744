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

// sdbus-c++ 1.x hands names back as std::string, 2.x as const char* (null when absent).
[[maybe_unused]] std::string text_of(const std::string& text) { return text; }
[[maybe_unused]] std::string text_of(const char* text) { return text != nullptr ? text : ""; }

}  // namespace

sdbus::Error to_bus_error(const std::exception& error) {
  if (auto* e = dynamic_cast<const Error*>(&error)) return compat::make_error(error_name(e->kind()), e->what());
  return compat::make_error(error_name(ErrorKind::system), error.what());
}

namespace {
// Far more than a burst of state changes can produce before the emitter thread catches up.
constexpr std::size_t kMaxQueuedSignals = 65536;
// Connections whose caller is remembered (a few hundred bytes each).
constexpr std::size_t kMaxKnownCallers = 4096;
// Connections that watch TaskStateChanged; beyond this the oldest stops hearing (it may ask again).
constexpr std::size_t kMaxWatchers = 4096;
}  // namespace

ManagerObject::ManagerObject(sdbus::IConnection& connection, daemon::TaskService& service, SpecParser parse_spec,
                             ManagerObjectOptions options)
    : AdaptorInterfaces(connection, sdbus::ObjectPath(kObjectPath)),
      service_(service),
      parse_spec_(std::move(parse_spec)),
      options_(options),
      signals_(1, kMaxQueuedSignals) {
  registerAdaptor();
  subscription_ = service_.subscribe([this](const TaskId& id, const daemon::TaskEvent& e) { on_event(id, e); });
}

ManagerObject::~ManagerObject() {
  subscription_.reset();  // no more events
  signals_.shutdown();    // no more signals: queued ones are dropped
  unregisterAdaptor();    // no more calls; operations in flight answer through their own Result
}

std::string ManagerObject::sender() const {
  return compat::with_current_message(getObject(), [](const sdbus::Message& m) { return text_of(m.getSender()); });
}

daemon::Caller ManagerObject::caller() const {
  return compat::with_current_message(getObject(), [this](const sdbus::Message& message) {
    const std::string sender = text_of(message.getSender());
    {
      std::lock_guard lock(callers_mutex_);
      if (auto it = callers_.find(sender); it != callers_.end()) return it->second;
    }
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
    std::lock_guard lock(callers_mutex_);
    if (!sender.empty() && callers_.emplace(sender, who).second) {
      callers_order_.push_back(sender);
      if (callers_order_.size() > kMaxKnownCallers) {
        callers_.erase(callers_order_.front());
        callers_order_.pop_front();
      }
    }
    return who;
  });
}

// The operation's reply, sent from the bus loop when runscoped says so (options.send_on_loop), else
// from whichever thread ended the operation.
template <typename T, typename Result, typename Send>
daemon::Reply<T> ManagerObject::reply_to(Result&& result, Send send) const {
  auto shared = std::make_shared<std::decay_t<Result>>(std::move(result));
  auto deliver = [shared, send](const daemon::Outcome<T>& outcome) {
    try {
      if (outcome.ok()) {
        send(*shared, outcome.get());
      } else {
        std::rethrow_exception(outcome.error());
      }
    } catch (const sdbus::Error& e) {
      shared->returnError(e);
    } catch (const std::exception& e) {
      shared->returnError(to_bus_error(e));
    }
  };
  return [deliver, post = options_.send_on_loop](daemon::Outcome<T> outcome) {
    if (!post) return deliver(outcome);
    post([deliver, outcome = std::move(outcome)] { deliver(outcome); });
  };
}

void ManagerObject::StartTask(sdbus::Result<std::string, std::string>&& result, std::string spec_json) {
  if (spec_json.size() > options_.max_spec_bytes) {
    // Refused before anything is parsed or queued.
    throw to_bus_error(Error(ErrorKind::invalid_argument,
                             "spec: " + std::to_string(spec_json.size()) + " bytes, more than the " +
                                 std::to_string(options_.max_spec_bytes) + " allowed (" +
                                 std::to_string(options_.max_spec_bytes >> 20) + " MiB; refused unparsed)"));
  }
  auto who = answer([&] { return caller(); });
  auto bytes = spec_json.size();
  daemon::SpecSource spec{[parse = parse_spec_, json = std::move(spec_json)] { return parse(json); }, bytes};
  service_.start(std::move(spec), who,
                 reply_to<TaskId>(std::move(result), [](auto& r, const TaskId& id) { r.returnResults(id.alloc(), id.task()); }));
}

void ManagerObject::StopTask(sdbus::Result<>&& result, std::string alloc, std::string task, uint64_t timeout_usec) {
  auto who = answer([&] { return caller(); });
  auto id = answer([&] { return task_id(alloc, task); });
  std::optional<Duration> timeout;
  // Beyond what a signed count holds it would wrap; the service caps a grace period at a year anyway.
  if (timeout_usec != 0) timeout = std::chrono::microseconds(std::min<uint64_t>(timeout_usec, 1ull << 52));
  service_.stop(id, timeout, who, reply_to<std::monostate>(std::move(result), [](auto& r, auto) { r.returnResults(); }));
}

void ManagerObject::SignalTask(const std::string& alloc, const std::string& task, const int32_t& signal) {
  answer([&] { service_.signal(task_id(alloc, task), signal, caller()); });
}

void ManagerObject::DestroyTask(sdbus::Result<>&& result, std::string alloc, std::string task) {
  auto who = answer([&] { return caller(); });
  auto id = answer([&] { return task_id(alloc, task); });
  service_.destroy(id, who, reply_to<std::monostate>(std::move(result), [](auto& r, auto) { r.returnResults(); }));
}

void ManagerObject::EnterTask(sdbus::Result<int32_t>&& result, std::string alloc, std::string task,
                              std::string spec_json, sdbus::UnixFd stdin_fd, sdbus::UnixFd stdout_fd,
                              sdbus::UnixFd stderr_fd) {
  if (spec_json.size() > driver::kMaxEnterSpecBytes) {
    throw to_bus_error(Error(ErrorKind::invalid_argument, "spec: " + std::to_string(spec_json.size()) +
                                                              " bytes, more than the " +
                                                              std::to_string(driver::kMaxEnterSpecBytes) + " allowed"));
  }
  auto who = answer([&] { return caller(); });
  auto id = answer([&] { return task_id(alloc, task); });
  // Small and bounded (the size check above): parsed here, so a bad spec is refused before the
  // service holds anything for it.
  auto spec = answer([&] { return driver::parse_enter_spec_json(spec_json); });
  auto stdio = std::make_shared<std::array<UniqueFd, 3>>();
  (*stdio)[0].reset(stdin_fd.release());
  (*stdio)[1].reset(stdout_fd.release());
  (*stdio)[2].reset(stderr_fd.release());
  service_.enter(id, daemon::EnterRequest{std::move(spec), std::move(stdio)}, who,
                 reply_to<int>(std::move(result), [](auto& r, int status) { r.returnResults(status); }));
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

sdbus::UnixFd ManagerObject::OpenTaskLog(const std::string& alloc, const std::string& task, const std::string& stream) {
  return answer([&] {
    auto fd = service_.open_log(task_id(alloc, task), stream, caller());
    return sdbus::UnixFd(fd.release(), sdbus::adopt_fd);
  });
}

void ManagerObject::WatchTasks() {
  answer([&] {
    auto who = caller();
    auto name = sender();
    if (name.empty()) throw Error(ErrorKind::permission, "a watcher needs a unique bus name");
    std::lock_guard lock(callers_mutex_);
    if (watchers_.insert_or_assign(name, who.uid).second) {
      watchers_order_.push_back(name);
      if (watchers_order_.size() > kMaxWatchers) {
        watchers_.erase(watchers_order_.front());
        watchers_order_.pop_front();
      }
    }
  });
}

std::map<std::string, std::string> ManagerObject::Fingerprint() {
  return answer([&] { return service_.fingerprint(); });
}

std::string ManagerObject::CpuPool() {
  return answer([&] {
    auto who = caller();
    auto pool = service_.cpu_pool();
    if (who.is_root()) return pool_json(pool).dump();
    std::set<TaskId> own;  // a member sees its own reservations by name, the others' as counts
    for (const auto& info : service_.list(who)) own.insert(info.id);
    return pool_json(pool, &own).dump();
  });
}

std::string ManagerObject::Version() { return RUNSCOPE_VERSION; }

// TaskStateChanged goes to each watcher that is root or the task's owner, addressed to it: a
// broadcast would tell every connection on the bus about everyone's tasks.
void ManagerObject::send_state(const TaskId& id, const daemon::TaskEvent& event, uid_t owner) {
  std::vector<std::string> to;
  {
    std::lock_guard lock(callers_mutex_);
    for (const auto& [name, uid] : watchers_) {
      if (uid == 0 || uid == owner) to.push_back(name);
    }
  }
  for (const auto& name : to) {
    try {
      auto signal = compat::signal(getObject(), kInterface, "TaskStateChanged");
      signal.setDestination(name);
      signal << id.alloc() << id.task() << daemon::to_string(event.state) << event.exit_code.value_or(-1)
             << event.signal.value_or(0) << event.oom_killed;
      getObject().emitSignal(signal);
    } catch (const std::exception& e) {
      spdlog::warn("could not send TaskStateChanged for {} to {}: {}", id.display(), name, e.what());
    }
  }
}

void ManagerObject::on_event(const TaskId& id, const daemon::TaskEvent& event) {
  auto emit = [this, id, event] { send_state(id, event, event.owner); };
  if (options_.send_on_loop) {
    options_.send_on_loop(emit);
  } else if (!signals_.submit({emit, [] {}})) {
    spdlog::warn("TaskStateChanged for {} dropped: {} signals already queued", id.display(), kMaxQueuedSignals);
  }
}

}  // namespace runscope::api
