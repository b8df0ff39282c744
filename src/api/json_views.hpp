// The documents the D-Bus API returns (schema in docs/api.md): built here, in one place, from the
// TaskService's value types, so the wire format is the API's and the CLI prints it unchanged.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/task_service.hpp"

namespace runscope::api {

// InspectTask's document is daemon::TaskInfo::to_json(); times are RFC 3339 in UTC there and here.
nlohmann::json events_json(const std::vector<daemon::TaskEvent>& events);
nlohmann::json logs_json(const daemon::LogInfo& logs);
// `own` (a member's view): only the reservations of those tasks by name; the others' only as
// counts ("others": {"tasks": N, "cores": M}). Null: root's view, every reservation.
nlohmann::json pool_json(const daemon::CpuPoolInfo& pool, const std::set<TaskId>* own = nullptr);
// cpu_user_usec, cpu_system_usec, oom_kills always; memory_current, memory_peak, pids_current
// when known.
std::map<std::string, std::uint64_t> stats_map(const cgroup::Stats& stats);

}  // namespace runscope::api
