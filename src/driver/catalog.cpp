#include "driver/catalog.hpp"

#include "common/error.hpp"

namespace runscope::driver {
namespace {

using json = nlohmann::json;

class RawExec final : public Driver {
 public:
  std::string name() const override { return "raw_exec"; }

  json config_schema() const override {
    return {{"type", "object"},
            {"required", {"command"}},
            {"properties",
             {{"command", {{"type", "string"}}},
              {"args", {{"type", "array"}, {"items", {{"type", "string"}}}}},
              {"cwd", {{"type", "string"}, {"absolute", true}}}}}};
  }

  void validate(const TaskSpec& spec, const FieldError& fail) const override {
    const json& c = spec.config;
    if (!c.is_object()) fail("config", "expected an object");
    for (const auto& [key, value] : c.items()) {
      if (key != "command" && key != "args" && key != "cwd") fail("config." + key, "unknown field for raw_exec");
    }
    if (!c.contains("command")) fail("config.command", "required field missing");
    const json& cmd = c["command"];
    if (!cmd.is_string() || cmd.get_ref<const std::string&>().empty()) {
      fail("config.command", "expected a non-empty string (got " + cmd.dump() + ")");
    }
    check_no_nul("config.command", cmd.get_ref<const std::string&>(), fail);
    if (c.contains("args")) {
      const json& args = c["args"];
      if (!args.is_array()) fail("config.args", "expected an array of strings");
      if (args.size() > kMaxArgs) fail("config.args", "more than " + std::to_string(kMaxArgs) + " arguments");
      for (std::size_t i = 0; i < args.size(); ++i) {
        std::string path = "config.args[" + std::to_string(i) + "]";
        if (!args[i].is_string()) fail(path, "expected a string (got " + args[i].dump() + ")");
        check_no_nul(path, args[i].get_ref<const std::string&>(), fail);
      }
    }
    if (c.contains("cwd")) {
      const json& cwd = c["cwd"];
      if (!cwd.is_string()) fail("config.cwd", "expected a string (got " + cwd.dump() + ")");
      const auto& s = cwd.get_ref<const std::string&>();
      if (s.empty() || s[0] != '/') fail("config.cwd", "must be an absolute path (got \"" + s + "\")");
      check_no_nul("config.cwd", s, fail);
    }
  }

  SpawnSpec to_spawn(const TaskSpec& spec, const std::vector<std::string>& base_env) const override {
    SpawnSpec out;
    out.argv.push_back(spec.config.at("command").get<std::string>());
    if (spec.config.contains("args")) {
      for (const auto& a : spec.config["args"]) out.argv.push_back(a.get<std::string>());
    }
    if (spec.config.contains("cwd")) out.cwd = spec.config["cwd"].get<std::string>();
    out.env = base_env;
    for (const auto& [k, v] : spec.env) {
      // Replaces the base's entry: with two, getenv() and the PATH lookup would disagree.
      // (A named prefix, not the binding, in the lambda: clang before 16 cannot capture bindings.)
      const std::string prefix = k + "=";
      std::erase_if(out.env, [&prefix](const std::string& e) { return e.starts_with(prefix); });
      out.env.push_back(prefix + v);
    }
    return out;
  }

 private:
  static void check_no_nul(const std::string& path, const std::string& s, const FieldError& fail) {
    if (s.find('\0') != std::string::npos) fail(path, "must not contain NUL");
  }
};

}  // namespace

void Catalog::add(std::unique_ptr<Driver> driver) { drivers_.push_back(std::move(driver)); }

const Driver& Catalog::get(const std::string& name) const {
  for (const auto& d : drivers_) {
    if (d->name() == name) return *d;
  }
  std::string known;
  for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(ErrorKind::invalid_argument, "driver: unknown driver \"" + name + "\" (known: " + known + ")");
}

std::vector<std::string> Catalog::names() const {
  std::vector<std::string> out;
  for (const auto& d : drivers_) out.push_back(d->name());
  return out;
}

void Catalog::validate(const TaskSpec& spec, const FieldError& fail) const {
  const Driver* driver = nullptr;
  for (const auto& d : drivers_) {
    if (d->name() == spec.driver) driver = d.get();
  }
  if (!driver) {
    try {
      get(spec.driver);
    } catch (const Error& e) {
      fail("driver", std::string(e.what()).substr(sizeof("driver: ") - 1));
    }
  }
  driver->validate(spec, fail);
}

void Catalog::validate(const TaskSpec& spec) const {
  validate(spec, [](const std::string& path, const std::string& what) {
    throw Error(ErrorKind::invalid_argument, path + ": " + what);
  });
}

std::unique_ptr<Driver> make_raw_exec_driver() { return std::make_unique<RawExec>(); }

const Catalog& default_catalog() {
  static const Catalog catalog = [] {
    Catalog c;
    c.add(make_raw_exec_driver());
    return c;
  }();
  return catalog;
}

}  // namespace runscope::driver
