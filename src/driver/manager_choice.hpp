// Which manager confines tasks on this host (pure: no bus, no systemd code).
//
//   unified host + systemd answering on the system bus -> systemd (transient scopes)
//   unified host without systemd                       -> cgroupfs, v2 backend
//   hybrid or legacy host                              -> cgroupfs, v1 backend (systemd removed
//                                                         v1 support, so it is never chosen)
// `manager = "systemd"` on a host where it cannot work is an error, never a silent fallback.
// The Backend that implements the decision is built by the programs' wiring (wiring/).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "cgroup/host.hpp"
#include "config/config.hpp"

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

// The host's cgroup layout from the visible mounts only (cgroup::drop_shadowed_mounts): THE
// detector (programs and host tests).
cgroup::HostLayout detect_layout(const std::filesystem::path& mountinfo = "/proc/self/mountinfo");

// The pure decision (unit-tested for every mode). `systemd_running` is asked only when it
// matters. Throws Error(unsupported) naming the manager and the host mode when impossible.
ManagerDecision choose_manager(const ManagerQuery& query, const cgroup::HostLayout& layout,
                               const std::function<bool()>& systemd_running);

// The v2 folder (relative to the cgroup2 mount) for a configured parent: a leading '/' anchors
// it at the mount's root, otherwise it lies beneath runscope's own cgroup2 cgroup.
std::filesystem::path v2_parent(const std::string& parent, const cgroup::CgroupPaths& own);

}  // namespace runscope::driver
