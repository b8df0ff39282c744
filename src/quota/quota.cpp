#include "quota/quota.hpp"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <charconv>

#include "common/error.hpp"
#include "common/units.hpp"

namespace runscope::quota {
namespace {

constexpr std::size_t kNssBuffer = 16384;
constexpr const char* kDefaultsTable = "[limits]";

using Field = std::optional<std::uint64_t> config::LimitValues::*;
using Slot = Limit Limits::*;
struct Key {
  const char* name;
  Field field;
  Slot slot;
};
constexpr Key kKeys[] = {
    {"tasks", &config::LimitValues::tasks, &Limits::tasks},
    {"reserved_cores", &config::LimitValues::reserved_cores, &Limits::reserved_cores},
    {"cpu_weight", &config::LimitValues::cpu_weight, &Limits::cpu_weight},
    {"memory_max", &config::LimitValues::memory_max, &Limits::memory_max},
    {"memory_total", &config::LimitValues::memory_total, &Limits::memory_total},
    {"log_bytes", &config::LimitValues::log_bytes, &Limits::log_bytes},
};

std::optional<unsigned long> numeric_id(const std::string& name) {
  unsigned long id = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec != std::errc() || end != name.data() + name.size() || id >= 0xffffffffUL) return std::nullopt;
  return id;
}

class NssIds final : public IdResolver {
 public:
  std::optional<uid_t> user(const std::string& name) const override {
    std::string buffer(kNssBuffer, '\0');
    passwd entry{};
    passwd* found = nullptr;
    ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    return found ? std::optional<uid_t>(found->pw_uid) : std::nullopt;
  }
  std::optional<gid_t> group(const std::string& name) const override {
    std::string buffer(kNssBuffer, '\0');
    struct group entry {};
    struct group* found = nullptr;
    ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    return found ? std::optional<gid_t>(found->gr_gid) : std::nullopt;
  }
};

// Resolves each override and files it by id; two tables for one id are an error naming both.
template <typename Id, typename Lookup, typename Table>
void resolve_all(const std::vector<config::LimitOverride>& overrides, const char* kind, Lookup lookup,
                 std::map<Id, Table>& out) {
  std::map<Id, std::string> seen_at;
  for (const auto& o : overrides) {
    const std::string key = std::string("limits.") + kind + "." + o.name;
    std::optional<Id> id;
    if (auto n = numeric_id(o.name)) id = static_cast<Id>(*n);
    else id = lookup(o.name);
    if (!id) throw Error(ErrorKind::config, o.where + ": " + key + ": no such " + kind);
    if (auto prior = seen_at.find(*id); prior != seen_at.end())
      throw Error(ErrorKind::config, o.where + ": " + key + ": " + kind + " " + std::to_string(*id) +
                                         " already has limits at " + prior->second);
    seen_at.emplace(*id, o.where);
    out.emplace(*id, Table{o.values, "[" + key + "]"});
  }
}

std::string amount(std::uint64_t value, bool bytes) {
  if (value == kUnlimited) return "unlimited";
  return bytes ? format_size(value) : std::to_string(value);
}

std::string count_of(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::uint64_t add(std::uint64_t a, std::uint64_t b) { return a > kUnlimited - b ? kUnlimited : a + b; }
std::uint64_t times(std::uint64_t a, std::uint64_t b) { return b != 0 && a > kUnlimited / b ? kUnlimited : a * b; }

// "uid 1000 is over its limit tasks = 64 (from [limits]): ..."
Refusal refuse(const Caller& caller, const char* key, const Limit& limit, bool bytes, const std::string& why) {
  return {key, "uid " + std::to_string(caller.uid) + " is over its limit " + key + " = " + amount(limit.value, bytes) +
                   " (from " + limit.from + "): " + why};
}

std::optional<Refusal> check_counts(const Caller& c, const Limits& l, const Usage& u, const Request& r) {
  if (add(u.tasks, 1) > l.tasks.value)
    return refuse(c, "tasks", l.tasks, false,
                  count_of(u.tasks, "task", "tasks") + " not yet ended, a start would make " +
                      std::to_string(add(u.tasks, 1)));
  if (r.cores > 0 && add(u.reserved_cores, r.cores) > l.reserved_cores.value)
    return refuse(c, "reserved_cores", l.reserved_cores, false,
                  count_of(u.reserved_cores, "core", "cores") + " reserved, resources.cores " +
                      std::to_string(r.cores) + " would make " + std::to_string(add(u.reserved_cores, r.cores)));
  if (r.cpu_weight && *r.cpu_weight > l.cpu_weight.value)
    return refuse(c, "cpu_weight", l.cpu_weight, false,
                  "resources.cpu_weight " + std::to_string(*r.cpu_weight) + " is above it");
  if (r.log_files && times(r.log_max_size, r.log_max_files) > l.log_bytes.value)
    return refuse(c, "log_bytes", l.log_bytes, true,
                  "log.max_size " + format_size(r.log_max_size) + " x log.max_files " +
                      std::to_string(r.log_max_files) + " = " + amount(times(r.log_max_size, r.log_max_files), true) +
                      " is above it");
  return std::nullopt;
}

std::optional<Refusal> check_memory(const Caller& c, const Limits& l, const Usage& u, const Request& r,
                                    const std::optional<std::uint64_t>& memory) {
  if (r.memory_max && *r.memory_max > l.memory_max.value)
    return refuse(c, "memory_max", l.memory_max, true,
                  "resources.memory_max " + format_size(*r.memory_max) + " is above it");
  if (l.memory_total.value == kUnlimited) return std::nullopt;
  const std::string used = amount(u.memory, true) + " of memory_max held by its tasks";
  if (!memory)
    return refuse(c, "memory_total", l.memory_total, true, used + "; the task must set resources.memory_max");
  if (add(u.memory, *memory) > l.memory_total.value)
    return refuse(c, "memory_total", l.memory_total, true,
                  used + ", " + (r.memory_max ? "resources.memory_max " : "the default memory_max ") +
                      format_size(*memory) + " would make " + amount(add(u.memory, *memory), true));
  return std::nullopt;
}

}  // namespace

void Decision::enforce() const {
  if (refusal) throw Error(ErrorKind::quota, refusal->message);
}

const IdResolver& system_ids() {
  static const NssIds ids;
  return ids;
}

Quotas::Quotas(const config::LimitsConfig& config, const IdResolver& ids) : defaults_(config.defaults) {
  resolve_all<uid_t>(config.users, "user", [&](const std::string& n) { return ids.user(n); }, users_);
  resolve_all<gid_t>(config.groups, "group", [&](const std::string& n) { return ids.group(n); }, groups_);
}

Limits Quotas::limits_for(const Caller& caller) const {
  Limits out;
  if (caller.uid != 0) {
    for (const auto& k : kKeys) out.*k.slot = {(defaults_.*k.field).value_or(kUnlimited), kDefaultsTable};
    for (const auto& k : kKeys) {
      std::optional<Limit> best;  // the most generous of the caller's groups
      for (gid_t gid : caller.gids) {
        auto g = groups_.find(gid);
        if (g == groups_.end() || !(g->second.values.*k.field)) continue;
        std::uint64_t v = *(g->second.values.*k.field);
        if (!best || v > best->value) best = Limit{v, g->second.name};
      }
      if (best) out.*k.slot = *best;
    }
  }
  if (auto u = users_.find(caller.uid); u != users_.end()) {
    for (const auto& k : kKeys)
      if (auto v = u->second.values.*k.field) out.*k.slot = {*v, u->second.name};
  }
  return out;
}

Decision Quotas::check(const Caller& caller, const Usage& usage, const Request& request) const {
  const Limits limits = limits_for(caller);
  Decision d;
  d.memory_max = request.memory_max;
  if (!d.memory_max && limits.memory_max.value != kUnlimited) d.memory_max = limits.memory_max.value;
  d.refusal = check_counts(caller, limits, usage, request);
  if (!d.refusal) d.refusal = check_memory(caller, limits, usage, request, d.memory_max);
  return d;
}

}  // namespace runscope::quota
