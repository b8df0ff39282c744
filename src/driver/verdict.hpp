// How a task ended, as both paths report it: `runscope exec --status-file` and runscoped's
// `inspect` print the same keys from this one type, and decide "OOM-killed" by the same rule.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "cgroup/cgroup.hpp"
#include "driver/process.hpp"

namespace runscope::driver {

using WallTime = std::chrono::system_clock::time_point;

// What the task's cgroup counted over its life, read just before the cgroup is removed. Empty
// where nothing counts (no cgroups) or a controller is missing (memory_peak needs memory v1 or
// memory.peak on v2).
struct Usage {
  std::optional<std::uint64_t> memory_peak;  // bytes
  std::optional<std::chrono::microseconds> cpu_user, cpu_system;

  static Usage of(const cgroup::Stats& stats);
  static Usage from_json(const nlohmann::json& j);  // the keys to_json writes; missing keys: empty
  bool operator==(const Usage&) const = default;
};

struct Verdict {
  std::optional<int> exit_code;  // it exited with this code
  std::optional<int> signal;     // or a signal ended it
  bool oom_killed = false;
  std::optional<WallTime> started_at, finished_at;
  Usage usage;

  // {"exit_code", "signal", "oom_killed", "started_at", "finished_at" (RFC 3339, UTC),
  //  "memory_peak" (bytes), "cpu_user_usec", "cpu_system_usec"}: null where unknown.
  nlohmann::json to_json() const;
  bool operator==(const Verdict&) const = default;
};

// The kernel's OOM killer ended the task: its main process died of SIGKILL while its cgroup
// counted an OOM kill. (A SIGKILL from anyone else leaves oom_kill at 0.)
bool ended_by_oom(const ExitStatus& status, const cgroup::Stats& stats);

Verdict make_verdict(const ExitStatus& status, const std::optional<cgroup::Stats>& stats, WallTime started_at,
                     WallTime finished_at);

}  // namespace runscope::driver
