// runscope.toml, parsed into plain structs. Parsing (load_config) is separate from the decisions
// made from it, so those are tested without any file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/cpuset.hpp"
#include "common/units.hpp"

namespace runscope::config {

inline constexpr const char* kDefaultPath = "/etc/runscope/runscope.toml";
inline constexpr int kExitConfig = 78;  // EX_CONFIG
// A real config is a few hundred bytes; anything past this is refused before it is parsed.
inline constexpr std::size_t kMaxConfigBytes = 1u << 20;

enum class ManagerChoice { automatic, cgroupfs, systemd };

struct CgroupsConfig {
  ManagerChoice manager = ManagerChoice::automatic;
  // v2: a slice name (default "runscope.slice"). v1: a folder; a leading '/' anchors it at each
  // hierarchy's root (default "/runscope"), otherwise it lies beneath runscope's own cgroup.
  std::optional<std::string> parent;
  Duration systemd_timeout = std::chrono::seconds(30);  // deadline for a systemd job
  bool operator==(const CgroupsConfig&) const = default;
};

struct CpusetConfig {
  std::optional<CpuSet> reservable_cores;  // default: all online CPUs
  CpuSet reserved_cores;                   // kept for the system, never handed out
  unsigned min_shared_cores = 1;
  Duration reconcile_interval = std::chrono::seconds(30);
  bool operator==(const CpusetConfig&) const = default;
};

struct TaskConfig {
  int kill_signal = 15;  // SIGTERM
  Duration kill_timeout = std::chrono::seconds(5);
  std::vector<uid_t> denied_uids;
  bool operator==(const TaskConfig&) const = default;
};

struct DaemonConfig {
  std::filesystem::path state_dir = "/var/lib/runscope";
  std::string log_level = "info";  // trace, debug, info, warn, error, critical, off
  bool operator==(const DaemonConfig&) const = default;
};

// [limits]: what a caller may use at once (docs/config.md). A value is a number (sizes in bytes)
// or kUnlimited ("unlimited" in the file).
inline constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

// One table of limits. In an override, an empty key inherits (from the groups, then [limits]).
struct LimitValues {
  std::optional<std::uint64_t> tasks;           // tasks not yet ended
  std::optional<std::uint64_t> reserved_cores;  // cores held by reservations (resources.cores)
  std::optional<std::uint64_t> cpu_weight;      // highest resources.cpu_weight of a task
  std::optional<std::uint64_t> memory_max;      // highest resources.memory_max of a task; its default
  std::optional<std::uint64_t> memory_total;    // resources.memory_max summed over the caller's tasks
  std::optional<std::uint64_t> log_bytes;       // log.max_size x log.max_files of a task (file logs)
  bool operator==(const LimitValues&) const = default;
};

// [limits.user.NAME] or [limits.group.NAME]: NAME is a name or a numeric id, resolved by the
// quota module (quota/quota.hpp), which reports an unknown one at `where`.
struct LimitOverride {
  std::string name;
  LimitValues values;
  std::string where;  // "FILE:LINE:COLUMN" of the table's name
  bool operator==(const LimitOverride&) const = default;
};

struct LimitsConfig {
  // For every caller but root; root is unlimited unless [limits.user.root] says otherwise.
  LimitValues defaults{64, 1, 100, kUnlimited, kUnlimited, std::uint64_t{1} << 30};
  std::vector<LimitOverride> users, groups;
  bool operator==(const LimitsConfig&) const = default;
};

struct Config {
  CgroupsConfig cgroups;
  CpusetConfig cpuset;
  TaskConfig task;
  DaemonConfig daemon;
  LimitsConfig limits;
  std::filesystem::path source;  // the file it came from; empty for built-in defaults
};

// Reads and validates a config file. Any unknown key, wrong type or bad value throws
// Error(config) with "FILE:LINE:COLUMN: key: what is wrong". A missing file at the default
// path yields the defaults; a missing file given explicitly is an error.
Config load_config(const std::filesystem::path& path, bool explicit_path);

// The same, from text already read; `source_name` is the FILE in messages.
Config parse_config(std::string_view text, const std::filesystem::path& source_name);

// The parent to use for a given cgroup version when none is configured.
std::string parent_for(const CgroupsConfig& cgroups, bool v2);

// Signal names ("SIGTERM", "TERM", "15") to numbers; throws Error(invalid_argument) naming it.
int parse_signal(std::string_view text);
std::string signal_name(int sig);

}  // namespace runscope::config
