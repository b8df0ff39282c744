// SIGHUP: what runscoped can change while tasks run, applied all at once or not at all.
// Live: [daemon] log_level, [task] (denied_uids, kill_signal, kill_timeout), [limits] (for
// starts from now on; its user and group names must resolve) and [cpuset] (a re-plan that must
// hold every current reservation). Restart-only: [cgroups] and
// [daemon] state_dir, which name where tasks and their state already live.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "cpuset/cpusets.hpp"
#include "quota/quota.hpp"

namespace runscope::runscoped {

struct ReloadTargets {
  std::function<void(const config::TaskConfig&)> set_task_policy;
  std::function<void(const std::string&)> set_log_level;
  cpuset::Cpusets* cpusets = nullptr;  // null: cpusets are off on this host
  std::function<void(std::shared_ptr<const quota::Quotas>)> set_quotas;
  const quota::IdResolver* ids = &quota::system_ids();  // how [limits.user/group.NAME] resolve
};

struct ReloadOutcome {
  bool applied = false;                    // false: refused, `current` unchanged
  std::string refused;                     // why, when refused
  std::vector<std::string> changed;        // what took effect: "log_level", "[task]", "[limits]", "[cpuset]"
  std::vector<std::string> needs_restart;  // "[cgroups]", "daemon.state_dir"
  std::string summary() const;             // one line for the log and STATUS=
};

// Applies `next` over `current`; on success `current` holds what now runs (restart-only sections
// keep their running values, so the next reload names them again).
ReloadOutcome apply_reload(const config::Config& next, config::Config& current, const ReloadTargets& targets);

}  // namespace runscope::runscoped
