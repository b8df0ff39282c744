// Per-caller quotas ([limits] in runscope.toml, docs/config.md): pure decisions, no daemon state.
// The daemon counts what a caller's unfinished tasks hold (Usage) and asks check() before it
// starts one; a refusal names the limit, where it is set, the request and the current use, and
// becomes org.runscope1.Error.QuotaExceeded (ErrorKind::quota).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace runscope::quota {

using config::kUnlimited;

// One limit as it applies to a caller, and the table that set it ("[limits]",
// "[limits.user.alice]", "[limits.group.dev]"; empty when nothing limits it).
struct Limit {
  std::uint64_t value = kUnlimited;
  std::string from;
  bool operator==(const Limit&) const = default;
};

struct Limits {
  Limit tasks, reserved_cores, cpu_weight, memory_max, memory_total, log_bytes;
  bool operator==(const Limits&) const = default;
};

struct Caller {
  uid_t uid = 0;
  std::vector<gid_t> gids;  // primary and supplementary
};

// What the caller's tasks that have not ended hold now.
struct Usage {
  std::uint64_t tasks = 0;
  std::uint64_t reserved_cores = 0;
  std::uint64_t memory = 0;  // the memory_max each was given (Decision::memory_max), summed
};

// What one start asks for.
struct Request {
  std::uint64_t cores = 0;                  // resources.cores; 0: a shared task
  std::optional<std::uint64_t> cpu_weight;  // resources.cpu_weight
  std::optional<std::uint64_t> memory_max;  // resources.memory_max
  bool log_files = false;                   // the task logs to files (log.max_size x log.max_files on disk)
  std::uint64_t log_max_size = 0;
  std::uint64_t log_max_files = 0;
};

struct Refusal {
  std::string limit;    // the [limits] key: "tasks", "reserved_cores", "cpu_weight", ...
  std::string message;  // the limit and its table, the request and the current use
};

struct Decision {
  std::optional<Refusal> refusal;
  // What the task's memory_max is to be: the request's, or the caller's memory_max limit when the
  // request names none (nullopt: no limit at all). Count it in Usage::memory while the task lives.
  std::optional<std::uint64_t> memory_max;
  bool ok() const { return !refusal; }
  void enforce() const;  // throws Error(ErrorKind::quota, refusal message) when refused
};

// Names of [limits.user.NAME] / [limits.group.NAME] to ids (a numeric NAME is the id itself).
class IdResolver {
 public:
  virtual ~IdResolver() = default;
  virtual std::optional<uid_t> user(const std::string& name) const = 0;
  virtual std::optional<gid_t> group(const std::string& name) const = 0;
};
const IdResolver& system_ids();  // NSS: getpwnam_r / getgrnam_r

class Quotas {
 public:
  Quotas() : Quotas(config::LimitsConfig{}, system_ids()) {}  // the built-in [limits], no override
  // Resolves every override's name now (at load and at reload, never per request). Throws
  // Error(config) "FILE:LINE:COLUMN: limits.user.NAME: no such user", also for two tables naming
  // the same id.
  Quotas(const config::LimitsConfig& config, const IdResolver& ids);

  // Per key: the caller's [limits.user] table, else the most generous of its groups' tables, else
  // [limits]. Root (uid 0) gets only its own user table: unlimited unless one is configured.
  Limits limits_for(const Caller& caller) const;
  Decision check(const Caller& caller, const Usage& usage, const Request& request) const;

 private:
  struct Table {
    config::LimitValues values;
    std::string name;  // "[limits.user.alice]"
  };
  config::LimitValues defaults_;
  std::map<uid_t, Table> users_;
  std::map<gid_t, Table> groups_;
};

}  // namespace runscope::quota
