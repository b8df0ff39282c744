#include "systemd/sync_manager.hpp"

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <type_traits>
#include <utility>

#include "common/clock.hpp"
#include "systemd/properties.hpp"

namespace runscope::systemd {
namespace {

constexpr const char* kService = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kProperties = "org.freedesktop.DBus.Properties";
constexpr std::size_t kMaxFinishedJobs = 1024;  // results nobody claims (other clients' jobs)

// Owns one reference to a message.
struct Message {
  sd_bus_message* m = nullptr;
  Message() = default;
  Message(Message&& other) noexcept : m(std::exchange(other.m, nullptr)) {}
  Message& operator=(Message&&) = delete;
  Message(const Message&) = delete;
  ~Message() { sd_bus_message_unref(m); }
};

struct BusErrorHolder {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusErrorHolder() { sd_bus_error_free(&e); }
};

std::uint64_t usec(std::chrono::nanoseconds d) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

[[noreturn]] void fail(int r, const std::string& what, const sd_bus_error* error = nullptr) {
  if (error != nullptr && sd_bus_error_is_set(error)) {
    throw BusError(error->name, what + ": " + (error->message ? error->message : error->name));
  }
  const int err = -r;
  if (err == ETIMEDOUT) throw BusError(kJobTimeout, what + ": timed out", ErrorKind::timeout);
  const bool lost = err == ECONNRESET || err == ENOTCONN || err == EPIPE || err == ECONNREFUSED || err == ENOENT ||
                    err == ESHUTDOWN;
  throw BusError(lost ? kDisconnected : "System.Error." + std::string(strerrorname_np(err) ? strerrorname_np(err) : "?"),
                 what + ": " + std::strerror(err));
}

void check(int r, const char* what) {
  if (r < 0) fail(r, std::string("building ") + what);
}

// One property as systemd takes it: (sv).
void append_property(sd_bus_message* m, const UnitProperty& p) {
  check(sd_bus_message_open_container(m, 'r', "sv"), "a property");
  check(sd_bus_message_append_basic(m, 's', p.name.c_str()), "a property name");
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          int b = v;
          check(sd_bus_message_append(m, "v", "b", b), "a bool");
        } else if constexpr (std::is_same_v<T, std::string>) {
          check(sd_bus_message_append(m, "v", "s", v.c_str()), "a string");
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          check(sd_bus_message_append(m, "v", "t", v), "a number");
        } else if constexpr (std::is_same_v<T, std::vector<std::uint32_t>>) {
          check(sd_bus_message_open_container(m, 'v', "au"), "a variant");
          check(sd_bus_message_append_array(m, 'u', v.data(), v.size() * sizeof(std::uint32_t)), "au");
          check(sd_bus_message_close_container(m), "a variant");
        } else if constexpr (std::is_same_v<T, std::vector<std::uint8_t>>) {
          check(sd_bus_message_open_container(m, 'v', "ay"), "a variant");
          check(sd_bus_message_append_array(m, 'y', v.data(), v.size()), "ay");
          check(sd_bus_message_close_container(m), "a variant");
        } else {
          static_assert(std::is_same_v<T, PidFds>, "a PropertyValue type this manager does not send");
          check(sd_bus_message_open_container(m, 'v', "ah"), "a variant");
          check(sd_bus_message_open_container(m, 'a', "h"), "ah");
          for (int fd : v.fds) check(sd_bus_message_append_basic(m, 'h', &fd), "a pidfd");  // sd-bus dups it
          check(sd_bus_message_close_container(m), "ah");
          check(sd_bus_message_close_container(m), "a variant");
        }
      },
      p.value);
  check(sd_bus_message_close_container(m), "a property");
}

void append_properties(sd_bus_message* m, const std::vector<UnitProperty>& props) {
  check(sd_bus_message_open_container(m, 'a', "(sv)"), "the properties");
  for (const auto& p : props) append_property(m, p);
  check(sd_bus_message_close_container(m), "the properties");
}

template <typename T>
std::vector<T> read_array(sd_bus_message* m, char type) {
  const void* data = nullptr;
  std::size_t size = 0;
  check(sd_bus_message_read_array(m, type, &data, &size), "reading an array");
  const auto* p = static_cast<const T*>(data);
  return std::vector<T>(p, p + size / sizeof(T));
}

PropertyValue read_variant(sd_bus_message* m, const std::string& what) {
  char type = 0;
  const char* contents = nullptr;
  check(sd_bus_message_peek_type(m, &type, &contents), "reading a variant");
  const std::string sig = contents ? contents : "";
  check(sd_bus_message_enter_container(m, 'v', contents), "reading a variant");
  PropertyValue out;
  if (sig == "b") {
    int b = 0;
    check(sd_bus_message_read_basic(m, 'b', &b), "reading a bool");
    out = b != 0;
  } else if (sig == "s" || sig == "o") {
    const char* s = nullptr;
    check(sd_bus_message_read_basic(m, sig[0], &s), "reading a string");
    out = std::string(s ? s : "");
  } else if (sig == "t") {
    std::uint64_t t = 0;
    check(sd_bus_message_read_basic(m, 't', &t), "reading a number");
    out = t;
  } else if (sig == "u") {
    std::uint32_t u = 0;
    check(sd_bus_message_read_basic(m, 'u', &u), "reading a number");
    out = static_cast<std::uint64_t>(u);
  } else if (sig == "au") {
    out = read_array<std::uint32_t>(m, 'u');
  } else if (sig == "ay") {
    out = read_array<std::uint8_t>(m, 'y');
  } else {
    throw BusError("io.runscope.UnsupportedType", what + " has D-Bus type '" + sig + "', which runscope does not read");
  }
  check(sd_bus_message_exit_container(m), "reading a variant");
  return out;
}

// ListUnits* rows: (ssssssouso); name, description, load, active, sub, ...
std::vector<UnitStatus> read_unit_rows(sd_bus_message* m) {
  std::vector<UnitStatus> out;
  check(sd_bus_message_enter_container(m, 'a', "(ssssssouso)"), "reading units");
  for (;;) {
    const char *name, *description, *load, *active, *sub, *following, *path, *job_type, *job_path;
    std::uint32_t job_id = 0;
    int r = sd_bus_message_read(m, "(ssssssouso)", &name, &description, &load, &active, &sub, &following, &path,
                                &job_id, &job_type, &job_path);
    check(r, "reading a unit");
    if (r == 0) break;
    out.push_back({name, load, active, sub});
  }
  check(sd_bus_message_exit_container(m), "reading units");
  return out;
}

int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
  std::uint32_t id = 0;
  const char *job = nullptr, *unit = nullptr, *result = nullptr;
  if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) >= 0 && job && result) {
    static_cast<SyncSystemdManager*>(userdata)->job_removed(job, result);
  }
  return 0;
}

bool use_private_socket() { return ::geteuid() == 0 && ::access(kPrivateSocket, F_OK) == 0; }

}  // namespace

SyncSystemdManager::SyncSystemdManager(SyncManagerOptions options) : options_(std::move(options)) {
  std::string address = options_.address;
  if (address.empty() && use_private_socket()) address = kPrivateAddress;
  direct_ = address == kPrivateAddress;
  int r = 0;
  if (address.empty()) {
    r = sd_bus_open_system(&bus_);
  } else {
    r = sd_bus_new(&bus_);
    if (r >= 0) r = sd_bus_set_address(bus_, address.c_str());
    if (r >= 0) r = sd_bus_set_bus_client(bus_, !direct_);
    if (r >= 0) r = sd_bus_start(bus_);
  }
  const std::string where = address.empty() ? "the system bus" : address;
  if (r < 0) {
    sd_bus_unref(bus_);
    bus_ = nullptr;
    throw BusError(kDisconnected, "systemd over " + where + ": " + std::strerror(-r));
  }
  // A direct connection has no sender names: match on path and member only there.
  r = sd_bus_match_signal_async(bus_, &job_removed_slot_, direct_ ? nullptr : kService, kPath, kManager, "JobRemoved",
                                on_job_removed, nullptr, this);
  if (r < 0) {
    sd_bus_flush_close_unref(bus_);
    bus_ = nullptr;
    fail(r, "systemd over " + where + ": watching JobRemoved");
  }
}

SyncSystemdManager::~SyncSystemdManager() {
  sd_bus_slot_unref(job_removed_slot_);
  sd_bus_flush_close_unref(bus_);
}

void SyncSystemdManager::job_removed(const std::string& job, const std::string& result) {
  if (finished_jobs_.size() >= kMaxFinishedJobs) finished_jobs_.erase(finished_jobs_.begin());
  finished_jobs_[job] = result;
}

std::string SyncSystemdManager::wait_job(const std::string& job) {
  const Deadline deadline(system_clock(), options_.timeout);
  for (;;) {
    if (auto it = finished_jobs_.find(job); it != finished_jobs_.end()) {
      auto result = it->second;
      finished_jobs_.erase(it);
      return result;
    }
    int r = sd_bus_process(bus_, nullptr);
    if (r < 0) fail(r, "waiting for job " + job);
    if (r > 0) continue;
    if (deadline.expired()) throw BusError(kJobTimeout, "timed out waiting for job " + job, ErrorKind::timeout);
    r = sd_bus_wait(bus_, usec(deadline.remaining()));
    if (r < 0 && r != -EINTR) fail(r, "waiting for job " + job);
  }
}

namespace {

// Makes a call on systemd's manager object (or `path`) and returns the reply.
struct Call {
  sd_bus* bus;
  std::chrono::nanoseconds timeout;

  Message method(const char* member, const char* path = kPath, const char* interface = kManager) const {
    Message m;
    check(sd_bus_message_new_method_call(bus, &m.m, kService, path, interface, member), member);
    return m;
  }
  Message send(Message& m, const std::string& what) const {
    BusErrorHolder error;
    Message reply;
    int r = sd_bus_call(bus, m.m, usec(timeout), &error.e, &reply.m);
    if (r < 0) fail(r, what, &error.e);
    return reply;
  }
};

void check_job_result(const std::string& verb, const std::string& unit, const std::string& result) {
  if (result != "done") {
    throw BusError(kJobFailed, "systemd job to " + verb + " " + unit + " ended with result '" + result + "'");
  }
}

}  // namespace

void SyncSystemdManager::start_transient_unit(const std::string& name, const std::vector<UnitProperty>& props) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("StartTransientUnit");
  check(sd_bus_message_append(m.m, "ss", name.c_str(), "fail"), "StartTransientUnit");
  append_properties(m.m, props);
  check(sd_bus_message_append(m.m, "a(sa(sv))", 0), "StartTransientUnit");
  auto reply = call.send(m, "StartTransientUnit " + name);
  const char* job = nullptr;
  check(sd_bus_message_read(reply.m, "o", &job), "reading the job");
  check_job_result("start", name, wait_job(job));
}

void SyncSystemdManager::stop_unit(const std::string& name) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("StopUnit");
  check(sd_bus_message_append(m.m, "ss", name.c_str(), "fail"), "StopUnit");
  std::string job;
  try {
    auto reply = call.send(m, "StopUnit " + name);
    const char* path = nullptr;
    check(sd_bus_message_read(reply.m, "o", &path), "reading the job");
    job = path;
  } catch (const BusError& e) {
    if (e.is(kNoSuchUnit)) return;  // not loaded: stopped
    throw;
  }
  check_job_result("stop", name, wait_job(job));
}

void SyncSystemdManager::send_stop_unit(const std::string& name) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("StopUnit");
  check(sd_bus_message_append(m.m, "ss", name.c_str(), "fail"), "StopUnit");
  // No reply is asked for: systemd sends none, and nothing is left unread on a connection that
  // may close right after.
  check(sd_bus_message_set_expect_reply(m.m, 0), "StopUnit");
  int r = sd_bus_send(bus_, m.m, nullptr);
  if (r >= 0) r = sd_bus_flush(bus_);
  if (r < 0) fail(r, "StopUnit " + name);
}

void SyncSystemdManager::reset_failed_unit(const std::string& name) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("ResetFailedUnit");
  check(sd_bus_message_append(m.m, "s", name.c_str()), "ResetFailedUnit");
  try {
    call.send(m, "ResetFailedUnit " + name);
  } catch (const BusError& e) {
    if (!e.is(kNoSuchUnit)) throw;
  }
}

void SyncSystemdManager::set_unit_properties(const std::string& name, bool runtime,
                                             const std::vector<UnitProperty>& props) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("SetUnitProperties");
  check(sd_bus_message_append(m.m, "sb", name.c_str(), static_cast<int>(runtime)), "SetUnitProperties");
  append_properties(m.m, props);
  call.send(m, "SetUnitProperties " + name);
}

PropertyValue SyncSystemdManager::get_unit_property(const std::string& name, const std::string& interface,
                                                    const std::string& property) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto get_unit = call.method("GetUnit");  // NoSuchUnit when it is not loaded, as the contract says
  check(sd_bus_message_append(get_unit.m, "s", name.c_str()), "GetUnit");
  auto unit = call.send(get_unit, "GetUnit " + name);
  const char* path = nullptr;
  check(sd_bus_message_read(unit.m, "o", &path), "reading the unit path");
  auto get = call.method("Get", path, kProperties);
  check(sd_bus_message_append(get.m, "ss", interface.c_str(), property.c_str()), "Get");
  auto reply = call.send(get, "Get " + name + " " + property);
  return read_variant(reply.m, name + " " + property);
}

std::string SyncSystemdManager::control_group(const std::string& name) {
  const auto dot = name.rfind('.');
  std::string type = dot == std::string::npos ? "" : name.substr(dot + 1);
  if (!type.empty()) type[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(type[0])));
  return std::get<std::string>(get_unit_property(name, "org.freedesktop.systemd1." + type, "ControlGroup"));
}

std::optional<UnitStatus> SyncSystemdManager::unit_status(const std::string& name) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("ListUnitsByNames");
  const char* names[] = {name.c_str(), nullptr};
  check(sd_bus_message_append_strv(m.m, const_cast<char**>(names)), "ListUnitsByNames");
  auto reply = call.send(m, "ListUnitsByNames " + name);
  auto rows = read_unit_rows(reply.m);
  if (rows.empty() || rows.front().load_state == "not-found") return std::nullopt;
  return rows.front();
}

std::vector<UnitStatus> SyncSystemdManager::list_units_by_patterns(const std::vector<std::string>& states,
                                                                   const std::vector<std::string>& patterns) {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("ListUnitsByPatterns");
  for (const auto* list : {&states, &patterns}) {
    std::vector<char*> strv;
    for (const auto& s : *list) strv.push_back(const_cast<char*>(s.c_str()));
    strv.push_back(nullptr);
    check(sd_bus_message_append_strv(m.m, strv.data()), "ListUnitsByPatterns");
  }
  auto reply = call.send(m, "ListUnitsByPatterns");
  return read_unit_rows(reply.m);
}

std::string SyncSystemdManager::version() {
  std::lock_guard lock(mutex_);
  Call call{bus_, options_.timeout};
  auto m = call.method("Get", kPath, kProperties);
  check(sd_bus_message_append(m.m, "ss", kManager, "Version"), "Get");
  auto reply = call.send(m, "Get Version");
  return std::get<std::string>(read_variant(reply.m, "Version"));
}

std::unique_ptr<SystemdBackend> make_sync_systemd_backend(const config::CgroupsConfig& cgroups, bool await_stop) {
  SyncManagerOptions options;
  options.timeout = cgroups.systemd_timeout;
  auto manager = std::make_unique<SyncSystemdManager>(options);
  // Connected to the private socket, systemd has answered; on the bus, the bus has.
  if (!manager->direct()) manager->version();
  SystemdBackendOptions backend_options;
  backend_options.parent_slice = cgroups.parent.value_or(kDefaultSlice);
  backend_options.await_stop = await_stop;
  return std::make_unique<SystemdBackend>(std::move(manager), std::move(backend_options));
}

}  // namespace runscope::systemd
