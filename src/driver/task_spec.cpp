// TaskSpec parsing: JSON directly, TOML converted to the same JSON tree (remembering where each
// field came from), then one validator for both, so the two formats can never disagree.
#include "driver/task_spec.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <sstream>

#include <toml++/toml.h>

#include "cgroup/cgroup.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"
#include "config/config.hpp"
#include "driver/catalog.hpp"

namespace runscope::driver {
namespace {

using json = nlohmann::json;
// Prefix for a message about a field: "" for JSON, "FILE:LINE:COLUMN: " for TOML.
using Locator = std::function<std::string(const std::string& path)>;

constexpr std::size_t kMaxShownValue = 80;

std::string shown(const json& value) {
  std::string s = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > kMaxShownValue) s = s.substr(0, kMaxShownValue) + "...";
  return s;
}

// A field path as it goes into a message (and over D-Bus): control bytes as \xNN, so a key
// holding NUL or a newline can't cut or split the one-line error.
std::string printable(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (c < 0x20 || c == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

class Validator {
 public:
  explicit Validator(Locator where) : where_(std::move(where)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(ErrorKind::invalid_argument, where_(path) + printable(path) + ": " + what);
  }
  [[noreturn]] void fail(const std::string& path, const json& value, const std::string& what) const {
    fail(path, what + " (got " + shown(value) + ")");
  }

  const std::string& string(const std::string& path, const json& v) const {
    if (!v.is_string()) fail(path, v, "expected a string");
    return v.get_ref<const std::string&>();
  }
  std::uint64_t integer(const std::string& path, const json& v, std::uint64_t min, std::uint64_t max) const {
    if (!v.is_number_integer()) fail(path, v, "expected an integer");
    if (v.is_number_unsigned() ? false : v.get<std::int64_t>() < 0) fail(path, v, "must not be negative");
    auto n = v.get<std::uint64_t>();
    if (n < min || n > max) {
      fail(path, v, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return n;
  }
  std::uint64_t size(const std::string& path, const json& v) const {
    if (v.is_number_integer()) return integer(path, v, 1, UINT64_MAX);
    std::uint64_t n = guarded(path, [&] { return parse_size(string(path, v), path); });
    if (n == 0) fail(path, v, "must be more than 0");
    return n;
  }
  template <typename F>
  auto guarded(const std::string& path, F&& parse) const -> decltype(parse()) {
    try {
      return parse();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::invalid_argument) throw;
      std::string msg = e.what();
      if (msg.rfind(path, 0) == 0) throw Error(ErrorKind::invalid_argument, where_(path) + msg);
      fail(path, msg);
    }
  }
  // Calls `on(key, value)` for each key, refusing keys not in `known`.
  void object(const std::string& path, const json& v, std::initializer_list<const char*> known,
              const std::function<void(const std::string&, const json&)>& on) const {
    if (!v.is_object()) fail(path.empty() ? "spec" : path, v, "expected an object");
    for (const auto& [key, value] : v.items()) {
      std::string sub = path.empty() ? key : path + "." + key;
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      if (!ok) fail(sub, "unknown field");
      on(key, value);
    }
  }

 private:
  Locator where_;
};

void parse_resources(const Validator& v, const json& node, Resources& r) {
  v.object("resources", node, {"cores", "memory_max", "cpu_weight", "pids_max"},
           [&](const std::string& key, const json& value) {
             std::string path = "resources." + key;
             if (key == "cores") r.cores = static_cast<unsigned>(v.integer(path, value, 1, 4096));
             if (key == "memory_max") {
               r.memory_max = v.size(path, value);
               if (*r.memory_max < kMinMemoryMax) {
                 v.fail(path, value, "below the minimum of " + std::to_string(kMinMemoryMax) + " bytes (1M)");
               }
             }
             if (key == "cpu_weight") r.cpu_weight = v.integer(path, value, kMinCpuWeight, kMaxCpuWeight);
             if (key == "pids_max") r.pids_max = v.integer(path, value, 1, UINT32_MAX);
           });
}

void parse_log(const Validator& v, const json& node, LogSpec& log) {
  v.object("log", node, {"target", "max_size", "max_files"}, [&](const std::string& key, const json& value) {
    std::string path = "log." + key;
    if (key == "target") {
      const auto& t = v.string(path, value);
      if (t == "auto") log.target = LogSpec::Target::automatic;
      else if (t == "file") log.target = LogSpec::Target::file;
      else if (t == "journal") log.target = LogSpec::Target::journal;
      else v.fail(path, value, "expected auto, file or journal");
    }
    if (key == "max_size") log.max_size = v.size(path, value);
    if (key == "max_files") log.max_files = static_cast<unsigned>(v.integer(path, value, 1, 100));
  });
}

TaskSpec validate(const json& root, const Validator& v) {
  TaskSpec spec;
  bool has_task = false;
  if (!root.is_object()) v.fail("spec", root, "expected an object");
  static constexpr std::initializer_list<const char*> kFields = {
      "alloc", "task", "driver", "config", "env", "user", "resources", "kill_signal", "kill_timeout", "log"};
  for (const auto& [key, value] : root.items()) {
    bool known = false;
    for (const char* k : kFields) known = known || key == k;
    if (!known) v.fail(key, "unknown field");
    if (key == "alloc") {
      spec.alloc = v.string(key, value);
      v.guarded(key, [&] { validate_name_part("alloc", *spec.alloc); return 0; });
    } else if (key == "task") {
      spec.task = v.string(key, value);
      v.guarded(key, [&] { validate_name_part("task", spec.task); return 0; });
      has_task = true;
    } else if (key == "driver") {
      spec.driver = v.string(key, value);
    } else if (key == "config") {
      if (!value.is_object()) v.fail(key, value, "expected an object");
      spec.config = value;
    } else if (key == "env") {
      if (!value.is_object()) v.fail(key, value, "expected an object");
      std::size_t bytes = 0;
      for (const auto& [name, val] : value.items()) {
        std::string path = "env." + name;
        if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos) {
          v.fail(path, "a variable name must be non-empty and hold no '=' or NUL");
        }
        const auto& s = v.string(path, val);
        if (s.find('\0') != std::string::npos) v.fail(path, "a value must hold no NUL");
        bytes += name.size() + s.size() + 2;
        if (bytes > kMaxEnvBytes) v.fail("env", "more than " + std::to_string(kMaxEnvBytes) + " bytes");
        spec.env[name] = s;
      }
    } else if (key == "user") {
      spec.user = v.string(key, value);
      if (spec.user->empty() || spec.user->find('\0') != std::string::npos) v.fail(key, value, "expected a user name or uid");
    } else if (key == "resources") {
      parse_resources(v, value, spec.resources);
    } else if (key == "kill_signal") {
      std::string text = value.is_number_integer() ? std::to_string(v.integer(key, value, 1, 64)) : v.string(key, value);
      spec.kill_signal = v.guarded(key, [&] { return config::parse_signal(text); });
    } else if (key == "kill_timeout") {
      const std::string& text = v.string(key, value);  // outside the lambda: clang 14 can't capture bindings
      spec.kill_timeout = v.guarded(key, [&text] { return parse_duration(text, "kill_timeout"); });
    } else if (key == "log") {
      parse_log(v, value, spec.log);
    }
  }
  if (!has_task) v.fail("task", "required field missing");
  if (spec.alloc) v.guarded("task", [&] { return TaskId(*spec.alloc, spec.task); });  // together within 255 bytes
  default_catalog().validate(spec, [&](const std::string& path, const std::string& what) { v.fail(path, what); });
  return spec;
}

// TOML -> JSON, recording where each dotted path came from.
json to_json_tree(const toml::node& node, const std::string& path,
                  std::map<std::string, toml::source_position>& at) {
  at[path] = node.source().begin;
  if (const auto* t = node.as_table()) {
    json out = json::object();
    for (const auto& [k, v] : *t) {
      std::string key(k.str());
      out[key] = to_json_tree(v, path.empty() ? key : path + "." + key, at);
    }
    return out;
  }
  if (const auto* a = node.as_array()) {
    json out = json::array();
    for (std::size_t i = 0; i < a->size(); ++i) {
      out.push_back(to_json_tree(*a->get(i), path + "[" + std::to_string(i) + "]", at));
    }
    return out;
  }
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return i->get();
  if (const auto* f = node.as_floating_point()) return f->get();
  if (const auto* b = node.as_boolean()) return b->get();
  std::ostringstream text;  // a date or time: no field takes one, so it becomes a value every field refuses
  if (const auto* d = node.as_date()) text << *d;
  if (const auto* t = node.as_time()) text << *t;
  if (const auto* dt = node.as_date_time()) text << *dt;
  return json{{"TOML date or time", text.str()}};
}

// The deepest nesting of [ and { outside strings: JSON that nests past kMaxSpecDepth is refused
// before the (recursive) printing of a bad value could run out of stack.
std::size_t json_depth(std::string_view text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

TaskSpec parse_task_spec_json(std::string_view text) {
  if (text.size() > kMaxSpecBytes) {
    throw Error(ErrorKind::invalid_argument,
                "spec: " + std::to_string(text.size()) + " bytes, more than the " + std::to_string(kMaxSpecBytes) + " allowed");
  }
  if (json_depth(text) > kMaxSpecDepth) {
    throw Error(ErrorKind::invalid_argument, "spec: nested deeper than " + std::to_string(kMaxSpecDepth) + " levels");
  }
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded()) throw Error(ErrorKind::invalid_argument, "spec: not valid JSON");
  return parse_task_spec(root);
}

TaskSpec parse_task_spec(const nlohmann::json& document) {
  return validate(document, Validator([](const std::string&) { return std::string(); }));
}

TaskSpec parse_task_spec_toml(const std::filesystem::path& file) {
  std::error_code ec;
  auto bytes = std::filesystem::file_size(file, ec);
  if (ec) throw Error(ErrorKind::not_found, file.string() + ": " + ec.message());
  if (bytes > kMaxSpecBytes) {
    throw Error(ErrorKind::invalid_argument, file.string() + ": more than " + std::to_string(kMaxSpecBytes) + " bytes");
  }
  return parse_task_spec_toml_text(read_file(file), file);
}

TaskSpec parse_task_spec_toml_text(std::string_view text, const std::filesystem::path& file) {
  if (text.size() > kMaxSpecBytes) {
    throw Error(ErrorKind::invalid_argument, file.string() + ": more than " + std::to_string(kMaxSpecBytes) + " bytes");
  }
  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw Error(ErrorKind::invalid_argument, file.string() + ":" + std::to_string(b.line) + ":" +
                                                 std::to_string(b.column) + ": " + std::string(e.description()));
  }
  std::map<std::string, toml::source_position> at;
  json tree = to_json_tree(root, "", at);
  return validate(tree, Validator([&](const std::string& path) {
                    // The nearest recorded ancestor of the path ("config.args[2]" -> itself or "config").
                    std::string p = path;
                    while (!p.empty() && !at.count(p)) {
                      auto cut = p.find_last_of(".[");
                      p = cut == std::string::npos ? "" : p.substr(0, cut);
                    }
                    auto pos = at.count(p) ? at[p] : toml::source_position{1, 1};
                    return file.string() + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": ";
                  }));
}

nlohmann::json to_json(const TaskSpec& spec) {
  json out = json::object();
  if (spec.alloc) out["alloc"] = *spec.alloc;
  out["task"] = spec.task;
  out["driver"] = spec.driver;
  out["config"] = spec.config;
  if (!spec.env.empty()) out["env"] = spec.env;
  if (spec.user) out["user"] = *spec.user;
  json r = json::object();
  if (spec.resources.cores) r["cores"] = *spec.resources.cores;
  if (spec.resources.memory_max) r["memory_max"] = *spec.resources.memory_max;
  if (spec.resources.cpu_weight) r["cpu_weight"] = *spec.resources.cpu_weight;
  if (spec.resources.pids_max) r["pids_max"] = *spec.resources.pids_max;
  if (!r.empty()) out["resources"] = r;
  if (spec.kill_signal) out["kill_signal"] = config::signal_name(*spec.kill_signal);
  if (spec.kill_timeout) out["kill_timeout"] = format_duration(*spec.kill_timeout);
  const char* target = spec.log.target == LogSpec::Target::file      ? "file"
                       : spec.log.target == LogSpec::Target::journal ? "journal"
                                                                     : "auto";
  out["log"] = {{"target", target}, {"max_size", spec.log.max_size}, {"max_files", spec.log.max_files}};
  return out;
}

}  // namespace runscope::driver
