#include "nomad/config.hpp"

#include <cmath>
#include <functional>
#include <limits>

#include "common/error.hpp"
#include "config/config.hpp"

namespace runscope::nomad {
namespace {

hclspec::Spec attr(const std::string& name, const std::string& type, bool required = false) {
  hclspec::Spec spec;
  auto* a = spec.mutable_attr();
  a->set_name(name);
  a->set_type(type);
  a->set_required(required);
  return spec;
}

// `literal` is an HCL expression, so strings carry their quotes.
hclspec::Spec with_default(hclspec::Spec primary, const std::string& literal) {
  hclspec::Spec spec;
  *spec.mutable_default_()->mutable_primary() = std::move(primary);
  spec.mutable_default_()->mutable_default_()->mutable_literal()->set_value(literal);
  return spec;
}

hclspec::Spec object(std::initializer_list<hclspec::Spec> attrs) {
  hclspec::Spec spec;
  auto& map = *spec.mutable_object()->mutable_attributes();
  for (const auto& a : attrs) {
    const auto& name = a.has_attr() ? a.attr().name() : a.default_().primary().attr().name();
    map[name] = a;
  }
  return spec;
}

class Fields {
 public:
  Fields(const nlohmann::json& value, std::string what) : value_(value), what_(std::move(what)) {
    if (!value_.is_object()) fail("", "must be an object (a config block), got " + value_.dump());
  }
  // Calls `take` for each non-null key; keys nobody takes are refused.
  void each(const std::function<bool(const std::string&, const nlohmann::json&)>& take) const {
    for (const auto& [key, v] : value_.items()) {
      if (v.is_null()) continue;
      if (!take(key, v)) fail(key, "unknown key");
    }
  }
  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw Error(ErrorKind::invalid_argument, what_ + (key.empty() ? "" : ": " + key) + ": " + why);
  }
  std::string text(const std::string& key, const nlohmann::json& v) const {
    if (!v.is_string()) fail(key, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }
  std::uint64_t whole(const std::string& key, const nlohmann::json& v, std::uint64_t min, std::uint64_t max) const {
    double d = 0;
    if (v.is_number_unsigned()) {
      d = static_cast<double>(v.get<std::uint64_t>());
    } else if (v.is_number()) {
      d = v.get<double>();
    } else {
      fail(key, "must be a number, got " + v.dump());
    }
    if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
      fail(key, "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                    v.dump());
    }
    return static_cast<std::uint64_t>(d);
  }
  std::vector<std::string> texts(const std::string& key, const nlohmann::json& v) const {
    if (!v.is_array()) fail(key, "must be a list of strings, got " + v.dump());
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.size(); ++i) out.push_back(text(key + "[" + std::to_string(i) + "]", v[i]));
    return out;
  }
  std::map<std::string, std::string> text_map(const std::string& key, const nlohmann::json& v) const {
    if (!v.is_object()) fail(key, "must be a map of strings, got " + v.dump());
    std::map<std::string, std::string> out;
    for (const auto& [k, item] : v.items()) out[k] = text(key + "." + k, item);
    return out;
  }
  // Runs a runscope parser (sizes, durations, signals) with this key in its message.
  template <typename Parse>
  auto parsed(const std::string& key, const nlohmann::json& v, Parse parse) const {
    auto raw = text(key, v);
    try {
      return parse(raw);
    } catch (const Error& e) {
      fail(key, e.what());
    }
  }

 private:
  const nlohmann::json& value_;
  std::string what_;
};

}  // namespace

hclspec::Spec plugin_config_spec() {
  return object({with_default(attr("bus", "string"), "\"system\""),
                 with_default(attr("fingerprint_period", "string"), "\"10s\"")});
}

hclspec::Spec task_config_spec() {
  return object({attr("command", "string", true), attr("args", "list(string)"), attr("cores", "number"),
                 attr("memory_max", "string"), attr("cpu_weight", "number"), attr("pids_max", "number"),
                 attr("user", "string"), attr("env", "map(string)"), attr("kill_signal", "string"),
                 attr("kill_timeout", "string")});
}

PluginConfig parse_plugin_config(const nlohmann::json& value) {
  PluginConfig out;
  Fields f(value, "plugin config");
  f.each([&](const std::string& key, const nlohmann::json& v) {
    if (key == "bus") {
      out.bus = f.text(key, v);
      if (out.bus.empty()) f.fail(key, "must not be empty (system, session or a D-Bus address)");
    } else if (key == "fingerprint_period") {
      out.fingerprint_period = f.parsed(key, v, [](const std::string& s) { return parse_duration(s, "duration"); });
      if (out.fingerprint_period < std::chrono::milliseconds(100)) f.fail(key, "must be at least 100ms");
    } else {
      return false;
    }
    return true;
  });
  return out;
}

TaskConfig parse_task_config(const nlohmann::json& value) {
  TaskConfig out;
  Fields f(value, "task config");
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  f.each([&](const std::string& key, const nlohmann::json& v) {
    if (key == "command") out.command = f.text(key, v);
    else if (key == "args") out.args = f.texts(key, v);
    else if (key == "cores") out.cores = static_cast<unsigned>(f.whole(key, v, 1, 4096));
    else if (key == "memory_max") out.memory_max = f.parsed(key, v, [](const std::string& s) { return parse_size(s); });
    else if (key == "cpu_weight") out.cpu_weight = f.whole(key, v, 1, 10000);
    else if (key == "pids_max") out.pids_max = f.whole(key, v, 1, kMax);
    else if (key == "user") out.user = f.text(key, v);
    else if (key == "env") out.env = f.text_map(key, v);
    else if (key == "kill_signal") out.kill_signal = f.parsed(key, v, [](const std::string& s) { return config::parse_signal(s); });
    else if (key == "kill_timeout") out.kill_timeout = f.parsed(key, v, [](const std::string& s) { return parse_duration(s); });
    else return false;
    return true;
  });
  if (out.command.empty()) f.fail("command", "is required (the program to run, e.g. \"/usr/bin/python3\")");
  return out;
}

}  // namespace runscope::nomad
