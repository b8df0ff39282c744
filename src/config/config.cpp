#include "config/config.hpp"

#include <toml++/toml.h>

#include <array>
#include <charconv>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/error.hpp"

namespace runscope::config {
namespace {

constexpr std::array<std::string_view, 7> kLogLevels{"trace", "debug", "info",    "warn",
                                                     "error", "critical", "off"};

// Everything a failure message needs: the file name and the dotted key being read.
struct Where {
  const std::filesystem::path& file;
  std::string key;
};

[[noreturn]] void fail(const std::filesystem::path& file, const toml::source_region& at,
                       std::string_view key, const std::string& what) {
  std::string msg = file.string() + ":" + std::to_string(at.begin.line) + ":" +
                    std::to_string(at.begin.column) + ": ";
  if (!key.empty()) msg += std::string(key) + ": ";
  throw Error(ErrorKind::config, msg + what);
}

[[noreturn]] void fail(const Where& w, const toml::node& node, const std::string& what) {
  fail(w.file, node.source(), w.key, what);
}

std::string type_name(const toml::node& node) {
  std::ostringstream out;
  out << node.type();
  return out.str();
}

const std::string& want_string(const Where& w, const toml::node& node) {
  if (auto* s = node.as_string()) return s->get();
  fail(w, node, "expected a string, got " + type_name(node));
}

std::int64_t want_integer(const Where& w, const toml::node& node, std::int64_t min, std::int64_t max) {
  auto* i = node.as_integer();
  if (!i) fail(w, node, "expected an integer, got " + type_name(node));
  if (i->get() < min || i->get() > max)
    fail(w, node, std::to_string(i->get()) + " is out of range " + std::to_string(min) + ".." +
                      std::to_string(max));
  return i->get();
}

// Runs a value parser from common/ (which throws invalid_argument) and re-throws it located.
template <typename F>
auto located(const Where& w, const toml::node& node, F&& parse) {
  try {
    return parse();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::config) throw;
    fail(w, node, e.what());
  }
}

Duration want_duration(const Where& w, const toml::node& node, bool allow_zero) {
  const auto& text = want_string(w, node);
  Duration d = located(w, node, [&] { return parse_duration(text, w.key); });
  if (!allow_zero && d == Duration::zero()) fail(w, node, "must be longer than 0");
  return d;
}

CpuSet want_cpus(const Where& w, const toml::node& node) {
  const auto& text = want_string(w, node);
  return located(w, node, [&] { return CpuSet::parse(text); });
}

using KeyParser = std::function<void(const Where&, const toml::node&)>;
using Section = std::vector<std::pair<std::string_view, KeyParser>>;

void read_section(const std::filesystem::path& file, std::string_view name, const toml::node& node,
                  const Section& keys) {
  auto* table = node.as_table();
  if (!table) fail(file, node.source(), name, "expected a table, got " + type_name(node));
  for (auto&& [key, value] : *table) {
    std::string dotted = std::string(name) + "." + std::string(key.str());
    const KeyParser* parser = nullptr;
    for (const auto& [known, p] : keys)
      if (known == key.str()) parser = &p;
    if (!parser) fail(file, key.source(), dotted, "unknown key in [" + std::string(name) + "]");
    (*parser)(Where{file, dotted}, value);
  }
}

Section cgroups_keys(CgroupsConfig& c) {
  return {
      {"manager",
       [&c](const Where& w, const toml::node& n) {
         const auto& s = want_string(w, n);
         if (s == "auto") c.manager = ManagerChoice::automatic;
         else if (s == "cgroupfs") c.manager = ManagerChoice::cgroupfs;
         else if (s == "systemd") c.manager = ManagerChoice::systemd;
         else fail(w, n, "\"" + s + "\" is not one of \"auto\", \"cgroupfs\", \"systemd\"");
       }},
      {"parent",
       [&c](const Where& w, const toml::node& n) {
         const auto& s = want_string(w, n);
         if (s.empty() || s == "/") fail(w, n, "must name a slice or folder, not \"" + s + "\"");
         for (unsigned char ch : s)
           if (ch < 0x20 || ch == 0x7f) fail(w, n, "contains a control character");
         std::filesystem::path p(s);
         for (const auto& part : p)
           if (part == "..") fail(w, n, "\"" + s + "\" must not contain \"..\"");
         c.parent = s;
       }},
      {"systemd_timeout",
       [&c](const Where& w, const toml::node& n) { c.systemd_timeout = want_duration(w, n, false); }},
  };
}

Section cpuset_keys(CpusetConfig& c) {
  return {
      {"reservable_cores",
       [&c](const Where& w, const toml::node& n) {
         c.reservable_cores = want_cpus(w, n);
         if (c.reservable_cores->empty()) fail(w, n, "must not be empty (omit it to use all online CPUs)");
       }},
      {"reserved_cores", [&c](const Where& w, const toml::node& n) { c.reserved_cores = want_cpus(w, n); }},
      {"min_shared_cores",
       [&c](const Where& w, const toml::node& n) {
         c.min_shared_cores = static_cast<unsigned>(want_integer(w, n, 0, CpuSet::kMaxCpus));
       }},
      {"reconcile_interval",
       [&c](const Where& w, const toml::node& n) { c.reconcile_interval = want_duration(w, n, false); }},
  };
}

Section task_keys(TaskConfig& c) {
  return {
      {"kill_signal",
       [&c](const Where& w, const toml::node& n) {
         if (auto* i = n.as_integer()) {
           c.kill_signal = located(w, n, [&] { return parse_signal(std::to_string(i->get())); });
           return;
         }
         const auto& s = want_string(w, n);
         c.kill_signal = located(w, n, [&] { return parse_signal(s); });
       }},
      {"kill_timeout",
       [&c](const Where& w, const toml::node& n) { c.kill_timeout = want_duration(w, n, true); }},
      {"denied_uids",
       [&c](const Where& w, const toml::node& n) {
         auto* array = n.as_array();
         if (!array) fail(w, n, "expected an array of integers, got " + type_name(n));
         c.denied_uids.clear();
         for (const auto& item : *array)  // (uid_t)-1 means "no change" to the kernel: never a uid
           c.denied_uids.push_back(static_cast<uid_t>(want_integer(w, item, 0, 0xfffffffeLL)));
       }},
  };
}

constexpr const char* kUnlimitedWord = "unlimited";
constexpr std::int64_t kMaxTasksLimit = 1'000'000;

std::string locate(const std::filesystem::path& file, const toml::source_region& at) {
  return file.string() + ":" + std::to_string(at.begin.line) + ":" + std::to_string(at.begin.column);
}

// A count: an integer in [min, max] or "unlimited".
std::uint64_t want_limit_count(const Where& w, const toml::node& node, std::int64_t min, std::int64_t max) {
  if (auto* s = node.as_string()) {
    if (s->get() == kUnlimitedWord) return kUnlimited;
    fail(w, node, "\"" + s->get() + "\" is not a number or \"unlimited\"");
  }
  return static_cast<std::uint64_t>(want_integer(w, node, min, max));
}

// A size: "512M", a number of bytes, or "unlimited".
std::uint64_t want_limit_size(const Where& w, const toml::node& node) {
  if (auto* s = node.as_string()) {
    if (s->get() == kUnlimitedWord) return kUnlimited;
    return located(w, node, [&] { return parse_size(s->get(), w.key); });
  }
  constexpr auto kMaxBytes = std::numeric_limits<std::int64_t>::max();
  if (node.is_integer()) return static_cast<std::uint64_t>(want_integer(w, node, 0, kMaxBytes));
  fail(w, node, "expected a size (\"512M\"), a number of bytes or \"unlimited\", got " + type_name(node));
}

Section limit_keys(LimitValues& v) {
  auto count = [](std::optional<std::uint64_t>& out, std::int64_t min, std::int64_t max) {
    return [&out, min, max](const Where& w, const toml::node& n) { out = want_limit_count(w, n, min, max); };
  };
  auto size = [](std::optional<std::uint64_t>& out) {
    return [&out](const Where& w, const toml::node& n) { out = want_limit_size(w, n); };
  };
  return {
      {"tasks", count(v.tasks, 0, kMaxTasksLimit)},
      {"reserved_cores", count(v.reserved_cores, 0, CpuSet::kMaxCpus)},
      {"cpu_weight",
       count(v.cpu_weight, static_cast<std::int64_t>(kMinCpuWeight), static_cast<std::int64_t>(kMaxCpuWeight))},
      {"memory_max", size(v.memory_max)},
      {"memory_total", size(v.memory_total)},
      {"log_bytes", size(v.log_bytes)},
  };
}

// [limits.user] / [limits.group]: a table of tables, one per name.
void read_overrides(const std::filesystem::path& file, const std::string& name, const toml::node& node,
                    std::vector<LimitOverride>& out) {
  auto* table = node.as_table();
  if (!table) fail(file, node.source(), name, "expected a table of [" + name + ".NAME] tables, got " + type_name(node));
  for (auto&& [key, value] : *table) {
    std::string dotted = name + "." + std::string(key.str());
    if (key.str().empty()) fail(file, key.source(), dotted, "names no user or group");
    LimitOverride o{std::string(key.str()), {}, locate(file, key.source())};
    read_section(file, dotted, value, limit_keys(o.values));
    out.push_back(std::move(o));
  }
}

void read_limits(const std::filesystem::path& file, const toml::node& node, LimitsConfig& c) {
  Section keys = limit_keys(c.defaults);
  keys.emplace_back("user", [&](const Where& w, const toml::node& n) { read_overrides(file, w.key, n, c.users); });
  keys.emplace_back("group", [&](const Where& w, const toml::node& n) { read_overrides(file, w.key, n, c.groups); });
  read_section(file, "limits", node, keys);
}

Section daemon_keys(DaemonConfig& c) {
  return {
      {"state_dir",
       [&c](const Where& w, const toml::node& n) {
         const auto& s = want_string(w, n);
         if (s.empty() || s.front() != '/') fail(w, n, "\"" + s + "\" is not an absolute path");
         c.state_dir = s;
       }},
      {"log_level",
       [&c](const Where& w, const toml::node& n) {
         const auto& s = want_string(w, n);
         for (auto level : kLogLevels)
           if (s == level) {
             c.log_level = s;
             return;
           }
         fail(w, n, "\"" + s + "\" is not one of trace, debug, info, warn, error, critical, off");
       }},
  };
}

// Checks that span keys; they are reported at the second key, naming both.
void check_cross_fields(const std::filesystem::path& file, const toml::table& root, const Config& c) {
  auto at = [&](std::string_view key) {
    auto node = root.at_path(std::string("cpuset.") + std::string(key));
    return node ? node.node()->source() : root.source();
  };
  const auto& cs = c.cpuset;
  if (!cs.reservable_cores) return;  // checked against the online CPUs at start-up
  if (!cs.reserved_cores.is_subset_of(*cs.reservable_cores))
    fail(file, at("reserved_cores"), "cpuset.reserved_cores",
         "\"" + cs.reserved_cores.to_string() + "\" is not inside cpuset.reservable_cores \"" +
             cs.reservable_cores->to_string() + "\"");
  auto left = (*cs.reservable_cores - cs.reserved_cores).size();
  if (left < cs.min_shared_cores)
    fail(file, at("min_shared_cores"), "cpuset.min_shared_cores",
         std::to_string(cs.min_shared_cores) + " is more than the " + std::to_string(left) +
             " cores cpuset.reservable_cores minus cpuset.reserved_cores leaves");
}

Config from_table(const toml::table& root, const std::filesystem::path& file) {
  Config c;
  c.source = file;
  for (auto&& [key, value] : root) {
    std::string_view name = key.str();
    if (name == "cgroups") read_section(file, name, value, cgroups_keys(c.cgroups));
    else if (name == "cpuset") read_section(file, name, value, cpuset_keys(c.cpuset));
    else if (name == "task") read_section(file, name, value, task_keys(c.task));
    else if (name == "daemon") read_section(file, name, value, daemon_keys(c.daemon));
    else if (name == "limits") read_limits(file, value, c.limits);
    else fail(file, key.source(), name, "unknown table (known: cgroups, cpuset, task, daemon, limits)");
  }
  check_cross_fields(file, root, c);
  return c;
}

}  // namespace

Config parse_config(std::string_view text, const std::filesystem::path& source_name) {
  if (text.size() > kMaxConfigBytes) {
    throw Error(ErrorKind::config, source_name.string() + ": " + std::to_string(text.size()) +
                                       " bytes, more than the " + std::to_string(kMaxConfigBytes) +
                                       " a config file may hold");
  }
  toml::table root;
  try {
    root = toml::parse(text, source_name.string());
  } catch (const toml::parse_error& e) {
    fail(source_name, e.source(), "", std::string(e.description()));
  }
  return from_table(root, source_name);
}

Config load_config(const std::filesystem::path& path, bool explicit_path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT && !explicit_path) return Config{};
    throw Error(ErrorKind::config, path.string() + ": cannot read config file: " + std::strerror(err), err);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(ErrorKind::config, path.string() + ": cannot read config file");
  return parse_config(text.str(), path);
}

std::string parent_for(const CgroupsConfig& cgroups, bool v2) {
  if (cgroups.parent) return *cgroups.parent;
  return v2 ? "runscope.slice" : "/runscope";
}

int parse_signal(std::string_view text) {
  std::string_view name = text;
  int number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (!text.empty() && ec == std::errc() && ptr == text.data() + text.size()) {
    if (number >= 1 && number <= SIGRTMAX) return number;
    throw Error(ErrorKind::invalid_argument,
                "signal " + std::string(text) + " is out of range 1.." + std::to_string(SIGRTMAX));
  }
  if (name.size() > 3 && name.substr(0, 3) == "SIG") name.remove_prefix(3);
  for (int sig = 1; sig < NSIG && sig < SIGRTMIN; ++sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev && name == abbrev) return sig;
  }
  throw Error(ErrorKind::invalid_argument,
              "unknown signal \"" + std::string(text) + "\" (use a name like SIGTERM, TERM or a number)");
}

std::string signal_name(int sig) {
  const char* abbrev = (sig >= 1 && sig < SIGRTMIN) ? ::sigabbrev_np(sig) : nullptr;
  if (abbrev) return std::string("SIG") + abbrev;
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) return "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
  return std::to_string(sig);
}

}  // namespace runscope::config
