#include "driver/verdict.hpp"

#include <signal.h>

#include "driver/shim_protocol.hpp"

namespace runscope::driver {
namespace {

using nlohmann::json;

template <typename T>
json or_null(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

json usec_or_null(const std::optional<std::chrono::microseconds>& value) {
  return value ? json(static_cast<std::uint64_t>(value->count())) : json(nullptr);
}

std::optional<std::chrono::microseconds> usec_from(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_unsigned()) return std::nullopt;
  return std::chrono::microseconds(j[key].get<std::uint64_t>());
}

}  // namespace

Usage Usage::of(const cgroup::Stats& stats) {
  return Usage{stats.memory_peak, stats.cpu_user, stats.cpu_system};
}

Usage Usage::from_json(const json& j) {
  Usage u;
  if (j.contains("memory_peak") && j["memory_peak"].is_number_unsigned()) u.memory_peak = j["memory_peak"].get<std::uint64_t>();
  u.cpu_user = usec_from(j, "cpu_user_usec");
  u.cpu_system = usec_from(j, "cpu_system_usec");
  return u;
}

json Verdict::to_json() const {
  auto time = [](const std::optional<WallTime>& t) { return t ? json(format_time(*t)) : json(nullptr); };
  return {{"exit_code", or_null(exit_code)},
          {"signal", or_null(signal)},
          {"oom_killed", oom_killed},
          {"started_at", time(started_at)},
          {"finished_at", time(finished_at)},
          {"memory_peak", or_null(usage.memory_peak)},
          {"cpu_user_usec", usec_or_null(usage.cpu_user)},
          {"cpu_system_usec", usec_or_null(usage.cpu_system)}};
}

bool ended_by_oom(const ExitStatus& status, const cgroup::Stats& stats) {
  return status.signaled && status.value == SIGKILL && stats.oom_kills > 0;
}

Verdict make_verdict(const ExitStatus& status, const std::optional<cgroup::Stats>& stats, WallTime started_at,
                     WallTime finished_at) {
  Verdict v;
  if (status.signaled) v.signal = status.value;
  else v.exit_code = status.value;
  v.oom_killed = stats && ended_by_oom(status, *stats);
  v.started_at = started_at;
  v.finished_at = finished_at;
  if (stats) v.usage = Usage::of(*stats);
  return v;
}

}  // namespace runscope::driver
