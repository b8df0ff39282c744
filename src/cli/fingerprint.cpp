#include "cli/fingerprint.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "driver/backend_factory.hpp"

namespace runscope::cli {
namespace {

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ",") + w;
  return out;
}

int run_fingerprint(const Globals& globals, bool json) {
  auto cfg = load(globals);
  auto layout = cgroup::detect_host();
  auto facts = cgroup::probe(layout, cgroup::own_cgroups());
  auto decision = driver::choose_manager({cfg.cgroups.manager, false}, layout, driver::systemd_booted);
  auto values = fingerprint_facts(facts, driver::to_string(decision.kind));
  if (json) {
    std::cout << nlohmann::json(values).dump(2) << "\n";
  } else {
    for (const auto& [key, value] : values) std::cout << key << "=" << value << "\n";
  }
  return 0;
}

}  // namespace

std::map<std::string, std::string> fingerprint_facts(const cgroup::Probe& probe, std::string_view manager) {
  return {
      {"unique.cgroups.version", std::string(cgroup::to_string(probe.version))},
      {"unique.cgroups.mode", std::string(cgroup::to_string(probe.mode))},
      {"cgroups.manager", std::string(manager)},
      {"cgroups.v1.controllers", join(probe.v1_controllers)},
      {"cgroups.v2.controllers", join(probe.v2_controllers)},
      {"cgroups.v2.cgroup_kill", probe.cgroup_kill ? "true" : "false"},
      {"cpu.online", probe.online_cpus.to_string()},
      {"cpu.count", std::to_string(probe.online_cpus.size())},
      {"runscope.version", RUNSCOPE_VERSION},
  };
}

Command add_fingerprint(CLI::App& app, const Globals& globals) {
  auto* sub = app.add_subcommand("fingerprint", "Print what this host offers as sorted key=value lines");
  auto json = std::make_shared<bool>(false);
  sub->add_flag("--json", *json, "Print one JSON object instead");
  return {sub, [&globals, json] { return run_fingerprint(globals, *json); }};
}

}  // namespace runscope::cli
