#include "cli/fingerprint.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/daemon_client.hpp"
#include "wiring/backend_factory.hpp"
#include "systemd/factory.hpp"

namespace runscope::cli {
namespace {

std::map<std::string, std::string> local_fingerprint(const Globals& globals) {
  auto cfg = load(globals);
  auto layout = driver::detect_layout();
  auto facts = cgroup::probe(layout, cgroup::own_cgroups());
  auto decision = driver::choose_manager({cfg.cgroups.manager, false}, layout, wiring::systemd_answers);
  auto values = fingerprint_facts(facts, driver::to_string(decision.kind));
  if (decision.kind == driver::ManagerKind::systemd) {
    if (auto version = systemd::probe_systemd_version()) values["systemd.version"] = *version;
  }
  return values;
}

int run_fingerprint(const Globals& globals, bool json, bool daemon) {
  // --daemon: what the running daemon sees and offers (its config, its drivers).
  auto values = daemon ? connect_daemon(globals)->fingerprint() : local_fingerprint(globals);
  if (json) {
    std::cout << nlohmann::json(values).dump(2) << "\n";
  } else {
    for (const auto& [key, value] : values) std::cout << key << "=" << value << "\n";
  }
  return 0;
}

}  // namespace

std::map<std::string, std::string> fingerprint_facts(const cgroup::Probe& probe, std::string_view manager) {
  auto facts = cgroup::probe_attributes(probe);
  facts["cgroups.manager"] = std::string(manager);
  facts["cpu.count"] = std::to_string(probe.online_cpus.size());
  facts["runscope.version"] = RUNSCOPE_VERSION;
  return facts;
}

Command add_fingerprint(CLI::App& app, const Globals& globals) {
  auto* sub = app.add_subcommand("fingerprint", "Print what this host offers as sorted key=value lines");
  auto json = std::make_shared<bool>(false);
  auto daemon = std::make_shared<bool>(false);
  sub->add_flag("--json", *json, "Print one JSON object instead");
  sub->add_flag("--daemon", *daemon, "Ask the running runscoped instead of probing here");
  return {sub, [&globals, json, daemon] { return run_fingerprint(globals, *json, *daemon); }};
}

}  // namespace runscope::cli
