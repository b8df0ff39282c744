// runscope.toml, parsed into plain structs. Parsing (load_config) is separate from the decisions
// made from it, so those are tested without any file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
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

struct Config {
  CgroupsConfig cgroups;
  CpusetConfig cpuset;
  TaskConfig task;
  DaemonConfig daemon;
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
