// Which applier the daemon's cpuset reconciler writes through, per manager and host:
//   systemd            -> SystemdApplier over the backend's own connection (AllowedCPUs of slices)
//   cgroupfs v1        -> CgroupfsApplier v1 in the cpuset hierarchy, under the task parent
//   cgroupfs v2        -> CgroupfsApplier v2 under the same folder the v2 backend uses, when the
//                         cgroup2 root offers the cpuset controller
// Anywhere else cpusets are off and `resources.cores` is refused with the reason.
#pragma once

#include <memory>
#include <string>

#include "cgroup/fs_ops.hpp"
#include "cgroup/host.hpp"
#include "config/config.hpp"
#include "cpuset/applier.hpp"
#include "driver/manager_choice.hpp"
#include "systemd/manager.hpp"

namespace runscope::wiring {

struct ApplierChoice {
  std::unique_ptr<cpuset::Applier> applier;  // null: cpusets off
  std::string off_reason;                    // why, when off (for the log and the refusal)
};

// `systemd_manager`: the systemd backend's connection, null on cgroupfs. `ops`: the cgroupfs seam.
ApplierChoice choose_cpuset_applier(const config::Config& cfg, const driver::ManagerDecision& decision,
                                    systemd::SystemdManager* systemd_manager, const cgroup::HostLayout& layout,
                                    const cgroup::CgroupPaths& own,
                                    cgroup::CgroupFsOps ops = cgroup::CgroupFsOps::kernel());

}  // namespace runscope::wiring
