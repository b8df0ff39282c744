// The Backend for a manager decision (driver/manager_choice.hpp), with whatever it needs kept
// alive (a bus connection for systemd). Wiring shared by the two programs that confine tasks:
// runscoped and `runscope exec`. The only place below the entry points that pulls in systemd/.
#pragma once

#include <memory>

#include "cgroup/cgroup.hpp"
#include "cgroup/host.hpp"
#include "common/clock.hpp"
#include "config/config.hpp"
#include "driver/manager_choice.hpp"
#include "systemd/manager.hpp"

namespace runscope::wiring {

// True when the system bus answers as systemd (asked with a short deadline; never throws).
bool systemd_answers();

class ManagedBackend {
 public:
  virtual ~ManagedBackend() = default;
  virtual cgroup::Backend& backend() = 0;
  virtual driver::ManagerDecision decision() const = 0;
  // The backend's systemd connection, for whatever else must talk to the same systemd (the
  // cpuset SystemdApplier); null on cgroupfs.
  virtual systemd::SystemdManager* systemd_manager() { return nullptr; }
};

struct BackendEnv {
  cgroup::HostLayout layout;
  cgroup::CgroupPaths own;  // runscope's own cgroups (relative parents lie beneath them)
  Clock* clock = &system_clock();
};

std::unique_ptr<ManagedBackend> make_backend(const config::Config& config, const driver::ManagerDecision& decision,
                                             const BackendEnv& env);

}  // namespace runscope::wiring
