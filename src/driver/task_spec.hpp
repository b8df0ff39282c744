// A task as users and orchestrators describe it: the JSON document StartTask takes and the CLI's
// task file (TOML, same structure). Parsing validates everything up front, naming the field
// ("resources.cores", "config.args[2]") and the value, so nothing is made from a bad spec.
//
// {
//   "alloc": "a1",                 optional: a random UUID
//   "task": "web",                 required
//   "driver": "raw_exec",          optional (the catalog: driver/catalog.hpp)
//   "config": {...},               the driver's own schema; raw_exec: command, args, cwd
//   "env": {"K": "V"},             optional
//   "user": "www-data",            optional; a caller that is not root may only name itself
//   "resources": {"cores": 1, "memory_max": "512M", "cpu_weight": 100, "pids_max": 1000},
//   "kill_signal": "SIGTERM", "kill_timeout": "5s",
//   "log": {"target": "auto|file|journal", "max_size": "10M", "max_files": 3}
// }
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/units.hpp"

namespace runscope::driver {

struct Resources {
  std::optional<unsigned> cores;  // exclusive cores from the cpuset reconciler
  std::optional<std::uint64_t> memory_max;
  std::optional<std::uint64_t> cpu_weight;
  std::optional<std::uint64_t> pids_max;
};

struct LogSpec {
  enum class Target { automatic, file, journal };  // automatic: journal on the systemd path
  Target target = Target::automatic;
  std::uint64_t max_size = 10u << 20;
  unsigned max_files = 3;
};

struct TaskSpec {
  std::optional<std::string> alloc;
  std::string task;
  std::string driver = "raw_exec";
  nlohmann::json config = nlohmann::json::object();  // validated by the driver's schema
  std::map<std::string, std::string> env;
  std::optional<std::string> user;
  Resources resources;
  std::optional<int> kill_signal;
  std::optional<Duration> kill_timeout;
  LogSpec log;
};

// Limits on what a spec may hold, so a hostile spec can't exhaust the daemon.
inline constexpr std::size_t kMaxSpecBytes = 4u << 20;
inline constexpr std::size_t kMaxArgs = 65536;
inline constexpr std::size_t kMaxEnvBytes = 1u << 20;
// Arrays and objects nested deeper than this are refused before parsing (a spec needs 3).
inline constexpr std::size_t kMaxSpecDepth = 32;
// The kernel takes a one-page memory limit, but nothing can exec under 1 MiB: refuse it up front.
inline constexpr std::uint64_t kMinMemoryMax = 1u << 20;

// Throw Error(invalid_argument) naming the field and value; unknown fields are errors too.
TaskSpec parse_task_spec_json(std::string_view json);
// The same for a document already built (the CLI's flags): strings need not be UTF-8 here.
TaskSpec parse_task_spec(const nlohmann::json& document);
TaskSpec parse_task_spec_toml(const std::filesystem::path& file);  // messages add file:line:column
// The same from text already read; `file` names it in messages.
TaskSpec parse_task_spec_toml_text(std::string_view text, const std::filesystem::path& file);
nlohmann::json to_json(const TaskSpec& spec);

}  // namespace runscope::driver
