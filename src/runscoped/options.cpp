#include "runscoped/options.hpp"

#include <algorithm>

namespace runscope::runscoped {

daemon::ManagerOptions manager_options(const config::Config& cfg, const driver::ManagerDecision& decision) {
  daemon::ManagerOptions options;
  options.state_dir = cfg.daemon.state_dir;
  options.denied_uids = cfg.task.denied_uids;
  options.kill_signal = cfg.task.kill_signal;
  options.kill_timeout = cfg.task.kill_timeout;
  // Names in [limits.user/group.NAME] resolve now: one that does not is a config error (exit 78).
  options.quotas = std::make_shared<const quota::Quotas>(cfg.limits, quota::system_ids());
  options.cleanup_timeout = std::max<Duration>(options.cleanup_timeout, cfg.cgroups.systemd_timeout);
  options.journal_logs = decision.kind == driver::ManagerKind::systemd;
  // A v1 task's cgroup holds a folder fd per hierarchy (6 here): closed while the task runs.
  // A v2 or systemd task's is one fd, and adopting a scope again costs bus round trips: kept.
  options.release_cgroups = decision.kind == driver::ManagerKind::cgroupfs && decision.version == cgroup::Version::v1;
  return options;
}

}  // namespace runscope::runscoped
