#include "api/client.hpp"

#include <poll.h>

#include "api/bus.hpp"
#include "api/errors.hpp"
#include "common/error.hpp"
#include "compat/sdbus.hpp"

namespace runscope::api {
namespace {

// StartTask waits for a cgroup or a systemd job (30 s deadline there); StopTask for the kill
// timeout. Calls that answer at once keep sd-bus's default.
constexpr auto kSlowCallTimeout = std::chrono::minutes(5);

bool daemon_absent(const std::string& name) {
  return name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner";
}

}  // namespace

std::string daemon_missing_hint(const std::string& bus) {
  return "runscoped is not running on the " + bus +
         " bus; start it with `systemctl start runscoped` (or `runscoped --bus session` and "
         "`--bus session` here)";
}

ManagerClient::ManagerClient(const std::string& bus) : bus_(bus) {
  try {
    connection_ = connect_bus(bus);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::unsupported) throw;
    throw Error(ErrorKind::unsupported, daemon_missing_hint(bus) + " (" + e.what() + ")");
  }
  proxy_ = compat::make_proxy(*connection_, kBusName, kObjectPath);
}

ManagerClient::~ManagerClient() = default;

Error ManagerClient::translate(const sdbus::Error& error) const {
  const auto& name = error.getName();
  if (name.rfind(kErrorPrefix, 0) == 0) return Error(error_kind(name), error.getMessage());
  if (daemon_absent(name)) return Error(ErrorKind::unsupported, daemon_missing_hint(bus_));
  if (name == "org.freedesktop.DBus.Error.AccessDenied") {
    return Error(ErrorKind::permission,
                 "the bus refused the call (only root and members of group runscope may use runscoped): " +
                     error.getMessage());
  }
  if (name == "org.freedesktop.DBus.Error.NoReply" || name == "org.freedesktop.DBus.Error.Timeout") {
    return Error(ErrorKind::timeout, "runscoped did not answer in time: " + error.getMessage());
  }
  return Error(ErrorKind::bus, name + ": " + error.getMessage());
}

template <typename Call>
auto ManagerClient::call(Call body) {
  try {
    return body();
  } catch (const sdbus::Error& e) {
    throw translate(e);
  }
}

TaskId ManagerClient::start(const std::string& spec_json) {
  return call([&] {
    std::string alloc, task;
    proxy_->callMethod("StartTask").onInterface(kInterface).withTimeout(kSlowCallTimeout).withArguments(spec_json)
        .storeResultsTo(alloc, task);
    return TaskId(alloc, task);
  });
}

void ManagerClient::stop(const TaskId& id, std::optional<Duration> timeout) {
  std::uint64_t usec =
      timeout ? static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(*timeout).count()) : 0;
  call([&] {
    proxy_->callMethod("StopTask").onInterface(kInterface).withTimeout(kSlowCallTimeout)
        .withArguments(id.alloc(), id.task(), usec);
  });
}

void ManagerClient::signal(const TaskId& id, int sig) {
  call([&] {
    proxy_->callMethod("SignalTask").onInterface(kInterface).withArguments(id.alloc(), id.task(), std::int32_t{sig});
  });
}

void ManagerClient::destroy(const TaskId& id) {
  call([&] {
    proxy_->callMethod("DestroyTask").onInterface(kInterface).withTimeout(kSlowCallTimeout)
        .withArguments(id.alloc(), id.task());
  });
}

nlohmann::json ManagerClient::inspect(const TaskId& id) {
  return call([&] {
    std::string json;
    proxy_->callMethod("InspectTask").onInterface(kInterface).withArguments(id.alloc(), id.task()).storeResultsTo(json);
    return nlohmann::json::parse(json);
  });
}

std::vector<TaskEntry> ManagerClient::list() {
  return call([&] {
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::uint32_t>> raw;
    proxy_->callMethod("ListTasks").onInterface(kInterface).storeResultsTo(raw);
    std::vector<TaskEntry> out;
    for (const auto& r : raw) out.push_back({std::get<0>(r), std::get<1>(r), std::get<2>(r), std::get<3>(r)});
    return out;
  });
}

std::map<std::string, std::uint64_t> ManagerClient::stats(const TaskId& id) {
  return call([&] {
    std::map<std::string, std::uint64_t> out;
    proxy_->callMethod("TaskStats").onInterface(kInterface).withArguments(id.alloc(), id.task()).storeResultsTo(out);
    return out;
  });
}

nlohmann::json ManagerClient::events(const TaskId& id) {
  return call([&] {
    std::string json;
    proxy_->callMethod("TaskEvents").onInterface(kInterface).withArguments(id.alloc(), id.task()).storeResultsTo(json);
    return nlohmann::json::parse(json);
  });
}

nlohmann::json ManagerClient::logs(const TaskId& id) {
  return call([&] {
    std::string json;
    proxy_->callMethod("TaskLogs").onInterface(kInterface).withArguments(id.alloc(), id.task()).storeResultsTo(json);
    return nlohmann::json::parse(json);
  });
}

UniqueFd ManagerClient::open_log(const TaskId& id, const std::string& stream) {
  return call([&] {
    sdbus::UnixFd fd;
    proxy_->callMethod("OpenTaskLog").onInterface(kInterface).withArguments(id.alloc(), id.task(), stream).storeResultsTo(fd);
    return UniqueFd(fd.release());
  });
}

nlohmann::json ManagerClient::cpu_pool() {
  return call([&] {
    std::string json;
    proxy_->callMethod("CpuPool").onInterface(kInterface).storeResultsTo(json);
    return nlohmann::json::parse(json);
  });
}

std::map<std::string, std::string> ManagerClient::fingerprint() {
  return call([&] {
    std::map<std::string, std::string> out;
    proxy_->callMethod("Fingerprint").onInterface(kInterface).storeResultsTo(out);
    return out;
  });
}

std::string ManagerClient::version() {
  return call([&] { return proxy_->getProperty("Version").onInterface(kInterface).get<std::string>(); });
}

int ManagerClient::enter(const TaskId& id, const driver::EnterSpec& spec, int in, int out, int err) {
  return call([&] {
    std::int32_t status = 0;
    // sd-bus reads a timeout of UINT64_MAX as "none": the reply comes when the command ends.
    proxy_->callMethod("EnterTask").onInterface(kInterface).withTimeout(UINT64_MAX)
        .withArguments(id.alloc(), id.task(), driver::to_json_text(spec), sdbus::UnixFd(in), sdbus::UnixFd(out),
                       sdbus::UnixFd(err))
        .storeResultsTo(status);
    return static_cast<int>(status);
  });
}

bool ManagerClient::can_enter() {
  return call([&] {
    std::string xml;
    proxy_->callMethod("Introspect").onInterface("org.freedesktop.DBus.Introspectable").storeResultsTo(xml);
    return xml.find("\"EnterTask\"") != std::string::npos;
  });
}

void ManagerClient::watch(std::function<void(const StateChange&)> on_change) {
  on_change_ = std::move(on_change);
  // Signals are addressed to watchers, and a restarted runscoped knows none: ask each new one.
  bus_proxy_ = compat::make_proxy(*connection_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
  compat::on_signal(*bus_proxy_, "org.freedesktop.DBus", "NameOwnerChanged",
                    [this](const std::string& name, const std::string&, const std::string& owner) {
                      if (name == kBusName && !owner.empty()) rewatch_ = true;
                    });
  call([&] { proxy_->callMethod("WatchTasks").onInterface(kInterface); });
  compat::on_signal(*proxy_, kInterface, "TaskStateChanged",
                    [this](const std::string& alloc, const std::string& task, const std::string& state,
                           std::int32_t exit_code, std::int32_t signal, bool oom) {
                      if (on_change_) on_change_({alloc, task, state, exit_code, signal, oom});
                    });
}

void ManagerClient::pump(std::chrono::milliseconds budget) {
  while (compat::process_pending(*connection_)) {
  }
  auto set = compat::poll_set(*connection_);
  ::poll(set.fds.data(), set.count, static_cast<int>(budget.count()));
  while (compat::process_pending(*connection_)) {
  }
  if (rewatch_) {
    rewatch_ = false;
    call([&] { proxy_->callMethod("WatchTasks").onInterface(kInterface); });
  }
}

}  // namespace runscope::api
