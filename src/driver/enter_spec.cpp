#include "driver/enter_spec.hpp"

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace runscope::driver {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& why) {
  throw Error(ErrorKind::invalid_argument, "enter spec: " + field + ": " + why);
}

std::string text_field(const json& j, const std::string& field) {
  if (!j.is_string()) bad(field, "must be a string, not " + j.dump());
  auto text = j.get<std::string>();
  // A NUL would cut the argument short in execve: refuse rather than run something else.
  if (text.find('\0') != std::string::npos) bad(field, "holds a NUL character");
  return text;
}

void read_env(const json& j, EnterSpec& spec) {
  if (!j.is_object()) bad("env", "must be an object of strings");
  for (const auto& [key, value] : j.items()) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos) {
      bad("env", "'" + key + "' is not a variable name");
    }
    spec.env[key] = text_field(value, "env." + key);
  }
}

}  // namespace

std::string to_json_text(const EnterSpec& spec) {
  json j = {{"command", spec.command}, {"args", spec.args}, {"env", spec.env}, {"tty", spec.tty}};
  if (spec.user) j["user"] = *spec.user;
  if (spec.cwd) j["cwd"] = *spec.cwd;
  return j.dump();
}

EnterSpec parse_enter_spec_json(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) bad("spec_json", "not a JSON object");
  EnterSpec spec;
  for (const auto& [key, value] : j.items()) {
    if (key == "command") {
      spec.command = text_field(value, "command");
    } else if (key == "args") {
      if (!value.is_array()) bad("args", "must be an array of strings");
      for (std::size_t i = 0; i < value.size(); ++i) spec.args.push_back(text_field(value[i], "args[" + std::to_string(i) + "]"));
    } else if (key == "env") {
      read_env(value, spec);
    } else if (key == "user") {
      spec.user = text_field(value, "user");
      if (spec.user->empty()) bad("user", "is empty");
    } else if (key == "cwd") {
      spec.cwd = text_field(value, "cwd");
      if (spec.cwd->empty() || spec.cwd->front() != '/') bad("cwd", "'" + *spec.cwd + "' is not an absolute path");
    } else if (key == "tty") {
      if (!value.is_boolean()) bad("tty", "must be true or false");
      spec.tty = value.get<bool>();
    } else {
      bad(key, "unknown field (known: command, args, env, user, cwd, tty)");
    }
  }
  if (spec.command.empty()) bad("command", "is required and may not be empty");
  return spec;
}

}  // namespace runscope::driver
