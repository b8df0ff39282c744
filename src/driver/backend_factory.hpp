// Which manager confines tasks on this host, and the Backend that implements it.
//
//   unified host + systemd answering on the system bus -> systemd (transient scopes, see
//                                                         systemd/factory.hpp)
//   unified host without systemd                       -> cgroupfs, v2 backend
//   hybrid or legacy host                              -> cgroupfs, v1 backend (systemd removed
//                                                         v1 support, so it is never chosen)
// `manager = "systemd"` on a host where it cannot work is an error, never a silent fallback.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cgroup/cgroup.hpp"
#include "cgroup/host.hpp"
#include "config/config.hpp"
#include "systemd/manager.hpp"

namespace runscope::driver {

enum class ManagerKind { cgroupfs, systemd };
std::string_view to_string(ManagerKind kind);

struct ManagerDecision {
  ManagerKind kind = ManagerKind::cgroupfs;
  cgroup::Version version = cgroup::Version::v1;  // which cgroupfs backend (systemd: always v2)
  bool operator==(const ManagerDecision&) const = default;
};

struct ManagerQuery {
  config::ManagerChoice choice = config::ManagerChoice::automatic;
  // Test/diagnostic override: drive the cgroup2 mount of a hybrid host with the v2 cgroupfs
  // backend (`runscope exec --cgroupfs-v2`, hidden). Only with the cgroupfs manager.
  bool force_v2 = false;
};

// mountinfo without the mounts this process cannot see: a mount is hidden by a later one on the
// same point or on an ancestor of it (a cgroup2 tree mounted over a hybrid host's /sys/fs/cgroup,
// as in a contained systemd, still lists the v1 hierarchies beneath it).
std::string drop_shadowed_mounts(std::string_view mountinfo);
// The host's cgroup layout from the visible mounts only.
cgroup::HostLayout detect_layout(const std::filesystem::path& mountinfo = "/proc/self/mountinfo");

// The pure decision (unit-tested for every mode). `systemd_running` is asked only when it
// matters. Throws Error(unsupported) naming the manager and the host mode when impossible.
ManagerDecision choose_manager(const ManagerQuery& query, const cgroup::HostLayout& layout,
                               const std::function<bool()>& systemd_running);

// True when the system bus answers as systemd (asked with a short deadline; never throws).
bool systemd_answers();

// A Backend together with whatever it needs kept alive (a bus connection for systemd).
class ManagedBackend {
 public:
  virtual ~ManagedBackend() = default;
  virtual cgroup::Backend& backend() = 0;
  virtual ManagerDecision decision() const = 0;
  // The backend's systemd connection, for whatever else must talk to the same systemd (the
  // cpuset SystemdApplier); null on cgroupfs.
  virtual systemd::SystemdManager* systemd_manager() { return nullptr; }
};

struct BackendEnv {
  cgroup::HostLayout layout;
  cgroup::CgroupPaths own;  // runscope's own cgroups (relative parents lie beneath them)
  Clock* clock = &system_clock();
};

// The v2 folder (relative to the cgroup2 mount) for a configured parent: a leading '/' anchors
// it at the mount's root, otherwise it lies beneath runscope's own cgroup2 cgroup.
std::filesystem::path v2_parent(const std::string& parent, const cgroup::CgroupPaths& own);

std::unique_ptr<ManagedBackend> make_backend(const config::Config& config, const ManagerDecision& decision,
                                             const BackendEnv& env);

}  // namespace runscope::driver
