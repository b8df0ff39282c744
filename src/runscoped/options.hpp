// What runscoped's config sets in the task manager: the one copy of that rule.
#pragma once

#include "config/config.hpp"
#include "daemon/task_manager.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::runscoped {

// [daemon] state_dir, [task] denied_uids/kill_signal/kill_timeout; on the systemd path the log
// target "auto" means the journal; the cleanup deadline is at least [cgroups] systemd_timeout
// (removing a scope waits for a systemd job that may take that long).
daemon::ManagerOptions manager_options(const config::Config& cfg, const driver::ManagerDecision& decision);

}  // namespace runscope::runscoped
