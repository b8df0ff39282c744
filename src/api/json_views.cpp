#include "api/json_views.hpp"

#include <cstdio>
#include <ctime>

namespace runscope::api {
namespace {

template <typename T>
nlohmann::json optional_json(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

nlohmann::json optional_time(const std::optional<daemon::WallTime>& at) {
  return at ? nlohmann::json(rfc3339(*at)) : nlohmann::json(nullptr);
}

}  // namespace

std::string rfc3339(daemon::WallTime at) {
  auto since = at.time_since_epoch();
  auto secs = std::chrono::floor<std::chrono::seconds>(since);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since - secs).count();
  std::time_t t = secs.count();
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
  return text;
}

nlohmann::json task_json(const daemon::TaskInfo& info) {
  nlohmann::json j{
      {"alloc", info.id.alloc()},
      {"task", info.id.task()},
      {"owner", info.owner},
      {"state", daemon::to_string(info.state)},
      {"pid", info.pid},
      {"manager", info.manager},
      {"exit_code", optional_json(info.exit_code)},
      {"signal", optional_json(info.signal)},
      {"oom_killed", info.oom_killed},
      {"started_at", optional_time(info.started_at)},
      {"finished_at", optional_time(info.finished_at)},
      {"cpus", info.cpus ? nlohmann::json(info.cpus->to_string()) : nlohmann::json(nullptr)},
  };
  // The systemd path names a unit; cgroupfs names the cgroup folder(s).
  j[info.manager == "systemd" ? "unit" : "cgroup"] = info.location;
  return j;
}

nlohmann::json events_json(const std::vector<daemon::TaskEvent>& events) {
  auto out = nlohmann::json::array();
  for (const auto& e : events) {
    out.push_back({{"state", daemon::to_string(e.state)},
                   {"at", rfc3339(e.at)},
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

nlohmann::json pool_json(const daemon::CpuPoolInfo& pool) {
  auto reservations = nlohmann::json::array();
  for (const auto& [id, cpus] : pool.reservations) {
    reservations.push_back({{"alloc", id.alloc()}, {"task", id.task()}, {"cpus", cpus.to_string()}});
  }
  return {{"reservable", pool.reservable.to_string()},
          {"reserved", pool.reserved.to_string()},
          {"shared", pool.shared.to_string()},
          {"reservations", reservations}};
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
