// The documents the D-Bus API returns (schema in docs/api.md): built here, in one place, from the
// TaskService's value types, so the wire format is the API's and the CLI prints it unchanged.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/task_service.hpp"

namespace runscope::api {

// "2026-11-29T18:58:21.123456Z"
std::string rfc3339(daemon::WallTime at);

// alloc, task, owner, state, pid, manager, unit|cgroup, exit_code, signal, oom_killed,
// started_at, finished_at, cpus (null when not known or not set).
nlohmann::json task_json(const daemon::TaskInfo& info);
nlohmann::json events_json(const std::vector<daemon::TaskEvent>& events);
nlohmann::json logs_json(const daemon::LogInfo& logs);
nlohmann::json pool_json(const daemon::CpuPoolInfo& pool);
// cpu_user_usec, cpu_system_usec, oom_kills always; memory_current, memory_peak, pids_current
// when known.
std::map<std::string, std::uint64_t> stats_map(const cgroup::Stats& stats);

}  // namespace runscope::api
