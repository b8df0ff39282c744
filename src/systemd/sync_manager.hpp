// SystemdManager for a short-lived command (`runscope exec`, `runscope orphans`): libsystemd's
// sd-bus, one connection, no thread and no event loop, each call made and waited for in turn.
// Like systemctl and systemd-run, root talks to systemd's private socket (/run/systemd/private):
// no bus daemon in between, no Hello, and systemd sends JobRemoved there unconditionally, so no
// Subscribe and no AddMatch. Others use the system bus (an asynchronous AddMatch; systemd sends a
// job's JobRemoved to the client that asked for the job). The daemon keeps SdbusSystemdManager:
// many callers in flight, reconnects; this one does neither.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "config/config.hpp"
#include "systemd/manager.hpp"
#include "systemd/scope_backend.hpp"

struct sd_bus;
struct sd_bus_slot;

namespace runscope::systemd {

inline constexpr const char* kPrivateSocket = "/run/systemd/private";
inline constexpr const char* kPrivateAddress = "unix:path=/run/systemd/private";  // of kPrivateSocket

struct SyncManagerOptions {
  // Empty: the private socket when root and it exists, else the system bus. Or a D-Bus address:
  // "unix:path=/run/systemd/private" connects directly, anything else as a bus client.
  std::string address;
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);  // per call, job wait included
};

class SyncSystemdManager final : public SystemdManager {
 public:
  // Connects; throws BusError(kDisconnected) when nothing answers there.
  explicit SyncSystemdManager(SyncManagerOptions options = {});
  ~SyncSystemdManager() override;
  SyncSystemdManager(const SyncSystemdManager&) = delete;
  SyncSystemdManager& operator=(const SyncSystemdManager&) = delete;

  bool direct() const { return direct_; }  // on systemd's private socket

  void start_transient_unit(const std::string& name, const std::vector<UnitProperty>& props) override;
  void stop_unit(const std::string& name) override;
  void send_stop_unit(const std::string& name) override;
  void reset_failed_unit(const std::string& name) override;
  void set_unit_properties(const std::string& name, bool runtime, const std::vector<UnitProperty>& props) override;
  PropertyValue get_unit_property(const std::string& name, const std::string& interface,
                                  const std::string& property) override;
  std::string control_group(const std::string& name) override;
  std::optional<UnitStatus> unit_status(const std::string& name) override;
  std::vector<UnitStatus> list_units_by_patterns(const std::vector<std::string>& states,
                                                 const std::vector<std::string>& patterns) override;
  std::string version() override;

  // For the JobRemoved match (a C callback): records a job's result.
  void job_removed(const std::string& job, const std::string& result);

 private:
  std::string wait_job(const std::string& job);

  SyncManagerOptions options_;
  std::mutex mutex_;  // one call at a time
  sd_bus* bus_ = nullptr;
  sd_bus_slot* job_removed_slot_ = nullptr;
  bool direct_ = false;
  std::map<std::string, std::string> finished_jobs_;  // job path -> result, until claimed
};

// A SystemdBackend on a SyncSystemdManager (slice from cgroups.parent, call deadline from
// cgroups.systemd_timeout; await_stop as SystemdBackendOptions says). Throws BusError when systemd
// does not answer: the connection is the question `manager = "auto"` asks, so no connection is
// made just to ask it.
std::unique_ptr<SystemdBackend> make_sync_systemd_backend(const config::CgroupsConfig& cgroups,
                                                          bool await_stop = true);

}  // namespace runscope::systemd
