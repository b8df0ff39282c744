#include "api/json_views.hpp"

#include "driver/shim_protocol.hpp"

namespace runscope::api {
namespace {

template <typename T>
nlohmann::json optional_json(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json events_json(const std::vector<daemon::TaskEvent>& events) {
  auto out = nlohmann::json::array();
  for (const auto& e : events) {
    out.push_back({{"state", daemon::to_string(e.state)},
                   {"at", driver::format_time(e.at)},
                   {"exit_code", optional_json(e.exit_code)},
                   {"signal", optional_json(e.signal)},
                   {"oom_killed", e.oom_killed},
                   {"message", e.message}});
  }
  return out;
}

nlohmann::json logs_json(const daemon::LogInfo& logs) {
  nlohmann::json j{{"target", logs.target}};
  if (logs.stdout_path) j["stdout"] = *logs.stdout_path;
  if (logs.stderr_path) j["stderr"] = *logs.stderr_path;
  if (!logs.journal_match.empty()) j["journal_match"] = logs.journal_match;
  return j;
}

nlohmann::json pool_json(const daemon::CpuPoolInfo& pool, const std::set<TaskId>* own) {
  auto reservations = nlohmann::json::array();
  std::uint64_t other_tasks = 0, other_cores = 0;
  for (const auto& [id, cpus] : pool.reservations) {
    if (own && !own->count(id)) {
      other_tasks += 1;
      other_cores += cpus.size();
      continue;
    }
    reservations.push_back({{"alloc", id.alloc()}, {"task", id.task()}, {"cpus", cpus.to_string()}});
  }
  nlohmann::json out{{"reservable", pool.reservable.to_string()},
                     {"reserved", pool.reserved.to_string()},
                     {"shared", pool.shared.to_string()},
                     {"reservations", reservations}};
  if (own) out["others"] = {{"tasks", other_tasks}, {"cores", other_cores}};
  return out;
}

std::map<std::string, std::uint64_t> stats_map(const cgroup::Stats& stats) {
  std::map<std::string, std::uint64_t> out{
      {"cpu_user_usec", static_cast<std::uint64_t>(stats.cpu_user.count())},
      {"cpu_system_usec", static_cast<std::uint64_t>(stats.cpu_system.count())},
      {"oom_kills", stats.oom_kills},
  };
  if (stats.memory_current) out["memory_current"] = *stats.memory_current;
  if (stats.memory_peak) out["memory_peak"] = *stats.memory_peak;
  if (stats.pids_current) out["pids_current"] = *stats.pids_current;
  return out;
}

}  // namespace runscope::api
