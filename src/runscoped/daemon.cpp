#include "runscoped/daemon.hpp"

#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>


#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "api/bus.hpp"
#include "api/errors.hpp"
#include "api/manager_object.hpp"
#include "compat/sdbus.hpp"
#include "cpuset/cpusets.hpp"
#include "cpuset/topology.hpp"
#include "runscoped/bus_loop.hpp"
#include "runscoped/notify.hpp"
#include "runscoped/reload.hpp"
#include "runscoped/signals.hpp"
#include "daemon/task_manager.hpp"
#include "runscoped/options.hpp"
#include "wiring/backend_factory.hpp"
#include "wiring/cpuset_wiring.hpp"

namespace runscope::runscoped {

using daemon::Caller;
using daemon::ExecShimLauncher;
using daemon::TaskManager;
namespace {

namespace fs = std::filesystem;

constexpr int kExitFailure = 1;
constexpr int kExitUnavailable = 69;
// The bus went away (dbus-daemon restarted, connection cut). Not 78, so the unit's
// Restart=on-failure starts a new runscoped, which reattaches the tasks (they keep running).
constexpr int kExitBusLost = 75;
// How often the main loop wakes without a signal: cpuset reconcile ticks.
constexpr auto kTick = std::chrono::seconds(1);

void set_log_level(const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level));
}

// The cpuset partitions (see daemon/cpuset_wiring.hpp): without an applier `resources.cores` is
// refused with the reason.
struct CpusetParts {
  std::unique_ptr<cpuset::Applier> applier;
  std::unique_ptr<cpuset::Cpusets> cpusets;
  std::string off_reason;
};

CpusetParts make_cpusets(const config::Config& cfg, const driver::ManagerDecision& decision,
                         wiring::ManagedBackend& backend, const cgroup::HostLayout& layout,
                         const cgroup::CgroupPaths& own) {
  CpusetParts parts;
  auto choice = wiring::choose_cpuset_applier(cfg, decision, backend.systemd_manager(), layout, own);
  parts.applier = std::move(choice.applier);
  if (!parts.applier) {
    parts.off_reason = choice.off_reason;
    spdlog::info("cpusets: off ({}); resources.cores will be refused", parts.off_reason);
    return parts;
  }
  auto topology = cpuset::Topology::read();
  auto reservable = cfg.cpuset.reservable_cores.value_or(topology.online());
  parts.cpusets = std::make_unique<cpuset::Cpusets>(
      cpuset::Planner(topology, reservable, cfg.cpuset.reserved_cores, cfg.cpuset.min_shared_cores), *parts.applier,
      system_clock(), cfg.cpuset.reconcile_interval);
  spdlog::info("cpusets: {}", parts.applier->name());
  return parts;
}

// SIGHUP: a file that does not load changes nothing (the error names FILE:LINE:COLUMN); one that
// loads is applied by apply_reload, all or nothing. Returns the STATUS= line.
std::string reload(const DaemonArgs& args, config::Config& current, TaskManager& manager, cpuset::Cpusets* cpusets) {
  config::Config next;
  try {
    next = config::load_config(args.config_path, args.config_given);
  } catch (const std::exception& e) {
    spdlog::error("reload refused, running configuration kept: {}", e.what());
    return "reload refused (bad config), running configuration kept";
  }
  ReloadTargets targets{[&manager](const config::TaskConfig& task) { manager.set_task_policy(task); },
                        set_log_level, cpusets,
                        [&manager](std::shared_ptr<const quota::Quotas> q) { manager.set_quotas(std::move(q)); }};
  auto outcome = apply_reload(next, current, targets);
  if (!outcome.applied) {
    spdlog::error("{}", outcome.summary());
  } else if (!outcome.needs_restart.empty()) {
    spdlog::warn("{}: {}", args.config_path.string(), outcome.summary());
  } else {
    spdlog::info("{}: {}", args.config_path.string(), outcome.summary());
  }
  return outcome.applied ? outcome.summary() : "reload refused, running configuration kept";
}

// Serves until SIGTERM/SIGINT (0) or the loss of the bus (kExitBusLost): signals and cpuset
// ticks, on this thread (the watchdog is the bus loop's: see runscoped/bus_loop.hpp).
int serve(const DaemonArgs& args, config::Config& cfg, DaemonSignals& signals, Notifier& notify,
          TaskManager& manager, cpuset::Cpusets* cpusets, const BusLoop& bus) {
  for (;;) {
    pollfd fds[2] = {{signals.fd(), POLLIN, 0}, {bus.fd(), POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kTick).count()));
    if (n < 0 && errno != EINTR) throw_system_error("poll");
    if (n > 0 && (fds[1].revents & POLLIN) != 0) {
      spdlog::error("lost the bus connection ({}); exiting {} so the service manager starts runscoped again; "
                    "tasks keep running", bus.why(), kExitBusLost);
      return kExitBusLost;
    }
    if (cpusets) {
      try {
        cpusets->tick();
      } catch (const std::exception& e) {
        spdlog::error("cpuset reconcile: {}", e.what());
      }
    }
    while (int sig = signals.take()) {
      if (sig != SIGHUP) {
        spdlog::info("received {}: stop serving; tasks keep running", config::signal_name(sig));
        return 0;
      }
      notify.reloading();
      notify.ready_again(reload(args, cfg, manager, cpusets) + "; serving");
    }
  }
}

int run(const DaemonArgs& args, config::Config cfg) {
  DaemonSignals signals;  // before any thread, so all of them block these
  Notifier notify;
  auto layout = driver::detect_layout();
  auto own = cgroup::own_cgroups();
  auto decision = driver::choose_manager({cfg.cgroups.manager, false}, layout, wiring::systemd_answers);
  auto bus = api::resolve_bus(args.bus);
  auto connection = api::connect_bus(bus);
  try {
    // The name first: it is what keeps a second runscoped off the same tasks and state.
    compat::request_name(*connection, api::kBusName);
  } catch (const sdbus::Error& e) {
    throw Error(ErrorKind::conflict, std::string("cannot own ") + api::kBusName + " on the " + bus +
                                         " bus (another runscoped, or the policy): " + e.getMessage());
  }
  auto backend = wiring::make_backend(cfg, decision, {layout, own});
  auto cpu = make_cpusets(cfg, decision, *backend, layout, own);
  auto task_nofile = daemon::raise_fd_limit();
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  spdlog::info("open file limit {} (about 7 fds per task on cgroup v1, 1-2 on the systemd path)", nofile.rlim_cur);
  ExecShimLauncher launcher(daemon::default_shim_path(), task_nofile);
  auto options = manager_options(cfg, decision);
  options.cpusets_off_reason = cpu.off_reason;
  TaskManager manager(backend->backend(), cpu.cpusets.get(), launcher, system_clock(), std::move(options),
                      [](const std::string& line) { spdlog::info("{}", line); });
  manager.recover();
  if (cpu.cpusets) cpu.cpusets->start();
  int code = 0;
  {
    auto outbox = std::make_shared<Outbox>();  // replies go out from the bus loop, between messages
    api::ManagerObjectOptions api_options;
    api_options.send_on_loop = outbox->poster();
    api::ManagerObject object(*connection, manager, driver::parse_task_spec_json, api_options);
    BusLoop loop(*connection, {notify.watchdog_interval(), [&notify] { notify.watchdog(); }, outbox});
    auto tasks = manager.list(Caller{}).size();
    notify.ready(fmt::format("serving on the {} bus; manager {}; {} task(s) recovered", bus,
                             driver::to_string(decision.kind), tasks));
    spdlog::info("serving {} on the {} bus (manager {}, {} task(s) recovered)", api::kBusName, bus,
                 driver::to_string(decision.kind), tasks);
    code = serve(args, cfg, signals, notify, manager, cpu.cpusets.get(), loop);
    notify.stopping();
  }
  try {
    compat::release_name(*connection, api::kBusName);
  } catch (const sdbus::Error& e) {
    spdlog::debug("releasing {}: {}", api::kBusName, e.getMessage());  // the bus is gone
  }
  manager.shutdown(true);
  return code;
}

int exit_code(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::config: return config::kExitConfig;
    case ErrorKind::unsupported: return kExitUnavailable;
    default: return kExitFailure;
  }
}

}  // namespace

int run_daemon(const DaemonArgs& args) {
  auto logger = spdlog::stderr_logger_mt("runscoped");
  logger->set_pattern("runscoped: [%l] %v");
  spdlog::set_default_logger(logger);
  config::Config cfg;
  try {
    // Validated before anything is touched: a bad file exits 78 with the file:line:column.
    cfg = config::load_config(args.config_path, args.config_given);
  } catch (const Error& e) {
    spdlog::critical("{}", e.what());
    return exit_code(e);
  }
  set_log_level(cfg.daemon.log_level);
  try {
    return run(args, std::move(cfg));
  } catch (const Error& e) {
    spdlog::critical("{}", e.what());
    return exit_code(e);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return kExitFailure;
  }
}

}  // namespace runscope::runscoped
