#include "systemd/sdbus_manager.hpp"

#include <cctype>
#include <thread>

#include "systemd/bus_link.hpp"

namespace runscope::systemd {
namespace {

using SdProperty = sdbus::Struct<std::string, sdbus::Variant>;
using AuxUnit = sdbus::Struct<std::string, std::vector<SdProperty>>;
// ListUnits* rows: name, description, load, active, sub, following, path, job id, type, path.
using UnitRow = sdbus::Struct<std::string, std::string, std::string, std::string, std::string,
                              std::string, sdbus::ObjectPath, std::uint32_t, std::string, sdbus::ObjectPath>;

constexpr auto kFirstBackoff = std::chrono::milliseconds(10);
constexpr auto kMaxBackoff = std::chrono::milliseconds(500);

sdbus::Variant to_variant(const PropertyValue& value) {
  return std::visit(
      [](const auto& v) -> sdbus::Variant {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, PidFds>) {
          std::vector<sdbus::UnixFd> fds;
          for (int fd : v.fds) fds.emplace_back(fd);  // dup'd; closed with the vector
          return sdbus::Variant(fds);
        } else {
          return sdbus::Variant(v);
        }
      },
      value);
}

std::vector<SdProperty> to_sdbus(const std::vector<UnitProperty>& props) {
  std::vector<SdProperty> out;
  out.reserve(props.size());
  for (const auto& p : props) out.emplace_back(p.name, to_variant(p.value));
  return out;
}

PropertyValue from_variant(const sdbus::Variant& v, const std::string& property) {
  const auto type = compat::value_type(v);
  if (type == "b") return v.get<bool>();
  if (type == "s" || type == "o") return v.get<std::string>();
  if (type == "t") return v.get<std::uint64_t>();
  if (type == "u") return static_cast<std::uint64_t>(v.get<std::uint32_t>());
  if (type == "au") return v.get<std::vector<std::uint32_t>>();
  if (type == "ay") return v.get<std::vector<std::uint8_t>>();
  throw BusError("io.runscope.UnsupportedType",
                 "property " + property + " has D-Bus type '" + type + "', which runscope does not read");
}

std::string unit_interface(const std::string& unit) {
  const auto dot = unit.rfind('.');
  std::string type = dot == std::string::npos ? "" : unit.substr(dot + 1);
  if (!type.empty()) type[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(type[0])));
  return "org.freedesktop.systemd1." + type;
}

void check_job_result(const std::string& verb, const std::string& unit, const std::string& result) {
  if (result != "done")
    throw BusError(kJobFailed, "systemd job to " + verb + " " + unit + " ended with result '" + result + "'");
}

// Asks for the unit's object path; throws BusError(kNoSuchUnit) when it is not loaded.
std::string unit_path(BusLink& link, const std::string& unit, const Deadline& deadline) {
  auto call = compat::method_call(link.manager(), kManagerInterface, "GetUnit");
  call << unit;
  auto reply = link.call(link.manager(), call, deadline);
  sdbus::ObjectPath path;
  reply >> path;
  return path;
}

std::vector<UnitStatus> read_unit_rows(sdbus::MethodReply& reply) {
  std::vector<UnitRow> rows;
  reply >> rows;
  std::vector<UnitStatus> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back({std::get<0>(r), std::get<2>(r), std::get<3>(r), std::get<4>(r)});
  return out;
}

std::optional<UnitStatus> status_of(BusLink& link, const std::string& name, const Deadline& deadline) {
  auto call = compat::method_call(link.manager(), kManagerInterface, "ListUnitsByNames");
  call << std::vector<std::string>{name};
  auto reply = link.call(link.manager(), call, deadline);
  auto rows = read_unit_rows(reply);
  if (rows.empty() || rows.front().load_state == "not-found") return std::nullopt;
  return rows.front();
}

std::vector<UnitStatus> list_units(BusLink& link, const std::vector<std::string>& states,
                                   const std::vector<std::string>& patterns, const Deadline& deadline) {
  auto call = compat::method_call(link.manager(), kManagerInterface, "ListUnitsByPatterns");
  call << states << patterns;
  auto reply = link.call(link.manager(), call, deadline);
  return read_unit_rows(reply);
}

}  // namespace

SdbusSystemdManager::SdbusSystemdManager(SdbusManagerOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : system_clock()),
      slots_(static_cast<std::ptrdiff_t>(std::clamp(options_.max_in_flight, 1U, 1024U))),
      link_(std::make_shared<BusLink>(options_.address)) {}

SdbusSystemdManager::~SdbusSystemdManager() = default;

std::shared_ptr<BusLink> SdbusSystemdManager::current_link() {
  std::lock_guard lock(link_mutex_);
  return link_;
}

void SdbusSystemdManager::reconnect(const std::shared_ptr<BusLink>& broken, const Deadline& deadline) {
  std::lock_guard lock(link_mutex_);
  if (link_ != broken && !link_->dead()) return;  // another caller already did it
  auto backoff = std::chrono::duration_cast<std::chrono::nanoseconds>(kFirstBackoff);
  for (;;) {
    try {
      link_ = std::make_shared<BusLink>(options_.address);
      ++reconnects_;
      return;
    } catch (const BusError& e) {
      if (deadline.expired()) throw BusError(kDisconnected, "cannot reconnect to systemd: " + std::string(e.what()));
    }
    clock_.sleep_for(std::min(backoff, deadline.remaining()));
    backoff = std::min<std::chrono::nanoseconds>(backoff * 2, kMaxBackoff);
  }
}

template <typename Op>
auto SdbusSystemdManager::with_retry(Op&& op) {
  const Deadline deadline(clock_, options_.timeout);
  if (!slots_.try_acquire_for(deadline.remaining()))
    throw BusError(kJobTimeout, "timed out waiting for a free systemd call slot", ErrorKind::timeout);
  struct Release {
    std::counting_semaphore<1024>& s;
    ~Release() { s.release(); }
  } release{slots_};
  auto link = current_link();
  try {
    return op(*link, deadline, false);
  } catch (const BusError& e) {
    if (!e.is(kDisconnected)) throw;
  }
  reconnect(link, deadline);
  return op(*current_link(), deadline, true);
}

void SdbusSystemdManager::start_transient_unit(const std::string& name, const std::vector<UnitProperty>& props) {
  with_retry([&](BusLink& link, const Deadline& deadline, bool retry) {
    auto call = compat::method_call(link.manager(), kManagerInterface, "StartTransientUnit");
    call << name << std::string("fail") << to_sdbus(props) << std::vector<AuxUnit>{};
    sdbus::ObjectPath job;
    try {
      auto reply = link.call(link.manager(), call, deadline);
      reply >> job;
    } catch (const BusError& e) {
      // The first attempt may have reached systemd before the connection broke: if so, its
      // job ran and the unit is already up.
      if (retry && e.is(kUnitExists)) {
        auto status = status_of(link, name, deadline);
        if (status && status->active_state == "active") return;
      }
      throw;
    }
    check_job_result("start", name, link.wait_job(job, deadline));
  });
}

void SdbusSystemdManager::start_transient_unit_async(const std::string& name, const std::vector<UnitProperty>& props,
                                                     Done done) {
  auto link = current_link();
  if (link->dead() || !slots_.try_acquire()) {
    SystemdManager::start_transient_unit_async(name, props, std::move(done));
    return;
  }
  // The slot goes back when the last copy of the continuation does (answered, or dropped with
  // its link).
  std::shared_ptr<void> slot(nullptr, [this](void*) { slots_.release(); });
  const Deadline deadline(clock_, options_.timeout);
  auto call = compat::method_call(link->manager(), kManagerInterface, "StartTransientUnit");
  call << name << std::string("fail") << to_sdbus(props) << std::vector<AuxUnit>{};
  BusLink* on = link.get();
  link->call_async(link->manager(), call, deadline,
                   [on, name, deadline, done, slot](sdbus::MethodReply* reply, std::exception_ptr error) {
                     if (error) return done(error);
                     sdbus::ObjectPath job;
                     if (auto failure = failure_of([&] { *reply >> job; })) return done(failure);
                     on->on_job(job, deadline, [name, done, slot](const std::string& result, std::exception_ptr e) {
                       if (!e && result != "done") {
                         e = std::make_exception_ptr(BusError(
                             kJobFailed, "systemd job to start " + name + " ended with result '" + result + "'"));
                       }
                       done(e);
                     });
                   });
}

void SdbusSystemdManager::stop_unit(const std::string& name) {
  with_retry([&](BusLink& link, const Deadline& deadline, bool) {
    auto call = compat::method_call(link.manager(), kManagerInterface, "StopUnit");
    call << name << std::string("fail");
    sdbus::ObjectPath job;
    try {
      auto reply = link.call(link.manager(), call, deadline);
      reply >> job;
    } catch (const BusError& e) {
      if (e.is(kNoSuchUnit)) return;
      throw;
    }
    check_job_result("stop", name, link.wait_job(job, deadline));
  });
}

void SdbusSystemdManager::reset_failed_unit(const std::string& name) {
  with_retry([&](BusLink& link, const Deadline& deadline, bool) {
    auto call = compat::method_call(link.manager(), kManagerInterface, "ResetFailedUnit");
    call << name;
    try {
      link.call(link.manager(), call, deadline);
    } catch (const BusError& e) {
      if (!e.is(kNoSuchUnit)) throw;
    }
  });
}

void SdbusSystemdManager::set_unit_properties(const std::string& name, bool runtime,
                                              const std::vector<UnitProperty>& props) {
  with_retry([&](BusLink& link, const Deadline& deadline, bool) {
    auto call = compat::method_call(link.manager(), kManagerInterface, "SetUnitProperties");
    call << name << runtime << to_sdbus(props);
    link.call(link.manager(), call, deadline);
  });
}

PropertyValue SdbusSystemdManager::get_unit_property(const std::string& name, const std::string& interface,
                                                     const std::string& property) {
  return with_retry([&](BusLink& link, const Deadline& deadline, bool) {
    auto proxy = link.proxy_for(unit_path(link, name, deadline));
    auto call = compat::method_call(*proxy, kPropertiesInterface, "Get");
    call << interface << property;
    auto reply = link.call(*proxy, call, deadline);
    sdbus::Variant value;
    reply >> value;
    return from_variant(value, name + " " + property);
  });
}

std::string SdbusSystemdManager::control_group(const std::string& name) {
  return std::get<std::string>(get_unit_property(name, unit_interface(name), "ControlGroup"));
}

std::optional<UnitStatus> SdbusSystemdManager::unit_status(const std::string& name) {
  return with_retry([&](BusLink& link, const Deadline& deadline, bool) { return status_of(link, name, deadline); });
}

std::vector<UnitStatus> SdbusSystemdManager::list_units_by_patterns(const std::vector<std::string>& states,
                                                                    const std::vector<std::string>& patterns) {
  return with_retry([&](BusLink& link, const Deadline& deadline, bool) {
    return list_units(link, states, patterns, deadline);
  });
}

std::string SdbusSystemdManager::version() {
  return with_retry([&](BusLink& link, const Deadline& deadline, bool) {
    auto call = compat::method_call(link.manager(), kPropertiesInterface, "Get");
    call << std::string(kManagerInterface) << std::string("Version");
    auto reply = link.call(link.manager(), call, deadline);
    sdbus::Variant value;
    reply >> value;
    return value.get<std::string>();
  });
}

}  // namespace runscope::systemd
