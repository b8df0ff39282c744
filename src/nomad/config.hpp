// What operators write in Nomad and what the plugin makes of it: the hclspec schemas the plugin
// answers ConfigSchema and TaskConfigSchema with, and the typed decoders of the values Nomad sends
// back (cty MessagePack, see cty_msgpack.hpp). Every refusal names the key and the value.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/units.hpp"
#include "nomad/hclspec.pb.h"

namespace runscope::nomad {

namespace hclspec = hashicorp::nomad::plugins::shared::hclspec;

// The client's `plugin "runscope-nomad-driver" { config { ... } }` block.
struct PluginConfig {
  std::string bus = "system";                          // runscoped's bus: system, session or an address
  Duration fingerprint_period = std::chrono::seconds(10);  // how often the daemon is asked again
};

// A job task's `config { ... }` block (docs/nomad.md lists every key).
struct TaskConfig {
  std::string command;
  std::vector<std::string> args;
  std::optional<unsigned> cores;
  std::optional<std::uint64_t> memory_max;
  std::optional<std::uint64_t> cpu_weight;
  std::optional<std::uint64_t> pids_max;
  std::optional<std::string> user;
  std::map<std::string, std::string> env;
  std::optional<int> kill_signal;
  std::optional<Duration> kill_timeout;
};

hclspec::Spec plugin_config_spec();
hclspec::Spec task_config_spec();

// From the decoded cty value; throw Error(invalid_argument) naming "plugin config"/"task config",
// the key and the value.
PluginConfig parse_plugin_config(const nlohmann::json& value);
TaskConfig parse_task_config(const nlohmann::json& value);

}  // namespace runscope::nomad
