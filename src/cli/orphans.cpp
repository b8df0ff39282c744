// `runscope orphans [--kill] [--json]`: the tasks of `runscope exec` runs that were ended by
// SIGKILL (or crashed) and so could not clean up (see exec_registry.hpp). Listing needs no daemon;
// --kill ends each the way exec would have: everything in its cgroup killed, the cgroup (or
// scope) removed; a --no-cgroups task's process group is killed.
#include <signal.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/daemon_client.hpp"
#include "cli/exec_registry.hpp"
#include "cli/orphans.hpp"
#include "driver/manager_choice.hpp"
#include "wiring/backend_factory.hpp"
#include "driver/shim_protocol.hpp"
#include "systemd/sync_manager.hpp"

namespace runscope::cli {
namespace {

using nlohmann::json;

constexpr auto kKillTimeout = std::chrono::seconds(30);

struct OrphansOptions {
  bool kill = false, json = false;
};

// The backend the orphan's exec used, rebuilt from its entry.
struct OrphanBackend {
  std::unique_ptr<systemd::SystemdBackend> systemd;
  std::unique_ptr<wiring::ManagedBackend> cgroupfs;
  cgroup::Backend& get() { return systemd ? *systemd : cgroupfs->backend(); }
};

OrphanBackend backend_for(const ExecEntry& e, config::Config cfg) {
  cfg.cgroups.parent = e.parent;
  OrphanBackend b;
  if (e.manager == "systemd") {
    b.systemd = systemd::make_sync_systemd_backend(cfg.cgroups);
    return b;
  }
  driver::ManagerDecision decision{driver::ManagerKind::cgroupfs, e.version == "v2" ? cgroup::Version::v2 : cgroup::Version::v1};
  b.cgroupfs = wiring::make_backend(cfg, decision, {driver::detect_layout(), e.own});
  return b;
}

// The main process is the group leader; its start time tells it from a process that reused
// the pid. Once the leader is gone the group id cannot be reused while a member lives.
bool group_is_ours(const ExecEntry& e) {
  if (e.main_pid <= 0) return false;
  auto started = driver::process_start_time(e.main_pid);
  return !started || *started == e.main_start_time;
}

// What is left of an orphan's task, held while we look at it or end it.
struct Remains {
  OrphanBackend backend;  // declared first: the cgroup uses it
  std::unique_ptr<cgroup::TaskCgroup> cg;
  std::optional<std::vector<pid_t>> pids;  // nullopt: nothing of the task exists any more
  Remains() = default;
  Remains(Remains&&) = default;
  ~Remains() {
    if (cg) cg->disown();  // looking never kills; end() destroys it first
  }
};

Remains remains(const ExecEntry& e, const config::Config& cfg) {
  Remains r;
  if (e.manager == "none") {
    if (group_is_ours(e) && (::kill(-e.main_pid, 0) == 0 || errno == EPERM)) r.pids = std::vector<pid_t>{e.main_pid};
    return r;
  }
  r.backend = backend_for(e, cfg);
  try {
    r.cg = r.backend.get().adopt(e.cgroup_name, cgroup::CpuPartition::none);
  } catch (const Error& err) {
    if (err.kind() == ErrorKind::not_found) return r;
    throw;
  }
  r.pids = r.cg->pids();
  return r;
}

void end(const ExecEntry& e, Remains& r) {
  if (!r.pids) return;
  if (e.manager == "none") {
    ::kill(-e.main_pid, SIGKILL);
    return;
  }
  r.cg->destroy(Deadline(system_clock(), kKillTimeout));
}

json describe(const Orphan& o, const std::optional<std::vector<pid_t>>& left) {
  const auto& e = o.entry;
  return {{"alloc", e.alloc},     {"task", e.task},
          {"manager", e.manager}, {"location", e.location.empty() ? e.cgroup_name : e.location},
          {"runscope_pid", e.runscope_pid}, {"main_pid", e.main_pid},
          {"started_at", e.started_at},     {"processes", left ? json(left->size()) : json(nullptr)},
          {"entry", o.file.string()}};
}

int run_orphans(const Globals& globals, const OrphansOptions& options) {
  auto cfg = load(globals);
  auto orphans = find_orphans(registry_dir());
  auto out = json::array();
  int failures = 0;
  for (auto& o : orphans) {
    std::optional<std::vector<pid_t>> left;
    try {
      auto r = remains(o.entry, cfg);
      left = r.pids;
      if (options.kill) {
        end(o.entry, r);
        std::error_code ec;
        std::filesystem::remove(o.file, ec);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "runscope: orphan %s/%s: %s\n", o.entry.alloc.c_str(), o.entry.task.c_str(), e.what());
      ++failures;
      continue;
    }
    out.push_back(describe(o, left));
  }
  if (options.json) {
    print_json(out);
  } else {
    for (const auto& j : out) {
      std::cout << j["alloc"].get<std::string>() << " " << j["task"].get<std::string>() << " "
                << j["manager"].get<std::string>() << " " << j["location"].get<std::string>() << " processes="
                << (j["processes"].is_null() ? std::string("none") : j["processes"].dump())
                << (options.kill ? " ended" : "") << "\n";
    }
  }
  return failures == 0 ? 0 : kExitFailure;
}

}  // namespace

Command add_orphans(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<OrphansOptions>();
  auto* sub = app.add_subcommand("orphans", "List (or --kill) tasks left by a `runscope exec` that was killed");
  sub->add_flag("--kill", o->kill, "End them: kill everything in their cgroups and remove the cgroups");
  sub->add_flag("--json", o->json, "Print JSON");
  return {sub, [&globals, o] { return run_orphans(globals, *o); }};
}

}  // namespace runscope::cli
