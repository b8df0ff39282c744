// The seam between runscope and systemd's manager object (org.freedesktop.systemd1). Logic above
// it (the scope backend) is unit-tested against a fake; SdbusSystemdManager is the real thing.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/error.hpp"

namespace runscope::systemd {

inline constexpr const char* kUnitExists = "org.freedesktop.systemd1.UnitExists";
inline constexpr const char* kNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit";
inline constexpr const char* kUnknownProperty = "org.freedesktop.DBus.Error.UnknownProperty";
inline constexpr const char* kPropertyReadOnly = "org.freedesktop.DBus.Error.PropertyReadOnly";
inline constexpr const char* kDisconnected = "org.freedesktop.DBus.Error.Disconnected";
inline constexpr const char* kNoReply = "org.freedesktop.DBus.Error.NoReply";
// Our own names for failures that are not D-Bus errors.
inline constexpr const char* kJobFailed = "io.runscope.JobFailed";
inline constexpr const char* kJobTimeout = "io.runscope.JobTimeout";

// Borrowed pidfds for the PIDFDs property (the manager dups them while sending).
struct PidFds {
  std::vector<int> fds;
  bool operator==(const PidFds&) const = default;
};

// The D-Bus types runscope sends and reads: b, s, t, au, ay, ah.
using PropertyValue = std::variant<bool, std::string, std::uint64_t, std::vector<std::uint32_t>,
                                   std::vector<std::uint8_t>, PidFds>;

struct UnitProperty {
  std::string name;
  PropertyValue value;
};

// A failure reported by the bus or by systemd. `name` is the D-Bus error name (or one of the
// io.runscope.* names above), so callers branch on it, never on the message text.
class BusError : public Error {
 public:
  BusError(std::string name, const std::string& message, ErrorKind kind = ErrorKind::bus)
      : Error(kind, message), name_(std::move(name)) {}
  const std::string& name() const noexcept { return name_; }
  bool is(std::string_view n) const noexcept { return name_ == n; }

 private:
  std::string name_;
};

struct UnitStatus {
  std::string name;
  std::string load_state;    // loaded, not-found, ...
  std::string active_state;  // active, inactive, failed, activating, deactivating
  std::string sub_state;
};

class SystemdManager {
 public:
  virtual ~SystemdManager() = default;

  // StartTransientUnit(name, "fail", props, []) and waits for its job; returns only when the job
  // result is "done". Throws BusError (kJobFailed with the result in the message on other results).
  virtual void start_transient_unit(const std::string& name, const std::vector<UnitProperty>& props) = 0;
  // The same without waiting: `done` is called once, when the job has ended ("done": no error)
  // or the call failed. It may run on the manager's own connection thread, so it must be short
  // and must not call this manager (it would wait for the thread it runs on). The default waits
  // (start_transient_unit on the caller's thread), then calls `done`.
  using Done = std::function<void(std::exception_ptr error)>;
  virtual void start_transient_unit_async(const std::string& name, const std::vector<UnitProperty>& props, Done done) {
    std::exception_ptr error;
    try {
      start_transient_unit(name, props);
    } catch (...) {
      error = std::current_exception();
    }
    done(error);
  }
  // StopUnit(name, "fail") and waits for its job. A unit that is not loaded counts as stopped.
  virtual void stop_unit(const std::string& name) = 0;
  // StopUnit(name, "fail") handed to systemd without waiting for its reply or its job: for a unit
  // with nothing left to stop (a scope whose cgroup is empty), where waiting would only be for
  // systemd's bookkeeping. Returns once the call has been written to systemd's socket. If the
  // connection then closes at once, systemd may not carry the call out (257 dropped 3 of 45 in a
  // loop; 252 none): an empty scope is stopped by systemd itself anyway, so use it for nothing
  // else. The default waits (stop_unit).
  virtual void send_stop_unit(const std::string& name) { stop_unit(name); }
  // ResetFailedUnit; a unit that is not loaded is not an error.
  virtual void reset_failed_unit(const std::string& name) = 0;
  virtual void set_unit_properties(const std::string& name, bool runtime,
                                   const std::vector<UnitProperty>& props) = 0;
  // Properties.Get on the unit's object; throws BusError(kNoSuchUnit) when it is not loaded.
  virtual PropertyValue get_unit_property(const std::string& name, const std::string& interface,
                                          const std::string& property) = 0;
  // The unit's ControlGroup ("/runscope.slice/a-t.scope"); empty when it has none.
  virtual std::string control_group(const std::string& name) = 0;
  // One unit by its exact name (ListUnitsByNames; no globbing of '\\' escapes); nullopt when it is
  // not loaded.
  virtual std::optional<UnitStatus> unit_status(const std::string& name) = 0;
  // Loaded units matching the shell-style patterns (any state when `states` is empty).
  virtual std::vector<UnitStatus> list_units_by_patterns(const std::vector<std::string>& states,
                                                         const std::vector<std::string>& patterns) = 0;
  virtual std::string version() = 0;
};

}  // namespace runscope::systemd
