#include "daemon/bus_daemon.hpp"

#include <poll.h>

#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "api/bus.hpp"
#include "api/errors.hpp"
#include "api/manager_object.hpp"
#include "cpuset/cpusets.hpp"
#include "cpuset/topology.hpp"
#include "daemon/cpuset_wiring.hpp"
#include "daemon/notify.hpp"
#include "daemon/signals.hpp"
#include "daemon/task_manager.hpp"
#include "driver/backend_factory.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;

constexpr int kExitFailure = 1;
constexpr int kExitUnavailable = 69;
// How often the main loop wakes without a signal: cpuset reconcile ticks and the watchdog.
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
                         driver::ManagedBackend& backend, const cgroup::HostLayout& layout,
                         const cgroup::CgroupPaths& own) {
  CpusetParts parts;
  auto choice = choose_cpuset_applier(cfg, decision, backend.systemd_manager(), layout, own);
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

ManagerOptions manager_options(const config::Config& cfg, const driver::ManagerDecision& decision) {
  ManagerOptions options;
  options.state_dir = cfg.daemon.state_dir;
  options.denied_uids = cfg.task.denied_uids;
  options.kill_signal = cfg.task.kill_signal;
  options.kill_timeout = cfg.task.kill_timeout;
  options.journal_logs = decision.kind == driver::ManagerKind::systemd;
  return options;
}

// SIGHUP: what can change at run time changes; the rest is named as needing a restart.
void reload(const DaemonArgs& args, config::Config& current) {
  config::Config next;
  try {
    next = config::load_config(args.config_path, args.config_given);
  } catch (const std::exception& e) {
    spdlog::error("reload: keeping the running configuration: {}", e.what());
    return;
  }
  if (next.daemon.log_level != current.daemon.log_level) set_log_level(next.daemon.log_level);
  if (!(next.cgroups == current.cgroups)) spdlog::warn("reload: [cgroups] changed; takes effect after a restart");
  if (!(next.cpuset == current.cpuset)) spdlog::warn("reload: [cpuset] changed; takes effect after a restart");
  if (!(next.task == current.task)) spdlog::warn("reload: [task] changed; takes effect after a restart");
  if (next.daemon.state_dir != current.daemon.state_dir) {
    spdlog::warn("reload: daemon.state_dir changed; takes effect after a restart");
  }
  current.daemon.log_level = next.daemon.log_level;
  spdlog::info("reloaded {}", args.config_path.string());
}

// Serves until SIGTERM/SIGINT: signals, the watchdog and cpuset ticks, on this thread.
void serve(const DaemonArgs& args, config::Config& cfg, DaemonSignals& signals, Notifier& notify,
           cpuset::Cpusets* cpusets) {
  auto watchdog = notify.watchdog_interval();
  auto period = watchdog ? std::min<Duration>(*watchdog, kTick) : Duration(kTick);
  for (;;) {
    pollfd fd{signals.fd(), POLLIN, 0};
    int n = ::poll(&fd, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(period).count()));
    if (n < 0 && errno != EINTR) throw_system_error("poll");
    if (watchdog) notify.watchdog();
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
        return;
      }
      notify.reloading();
      reload(args, cfg);
      notify.ready_again();
    }
  }
}

int run(const DaemonArgs& args, config::Config cfg) {
  DaemonSignals signals;  // before any thread, so all of them block these
  Notifier notify;
  auto layout = driver::detect_layout();
  auto own = cgroup::own_cgroups();
  auto decision = driver::choose_manager({cfg.cgroups.manager, false}, layout, driver::systemd_answers);
  auto bus = api::resolve_bus(args.bus);
  auto connection = api::connect_bus(bus);
  try {
    // The name first: it is what keeps a second runscoped off the same tasks and state.
    connection->requestName(api::kBusName);
  } catch (const sdbus::Error& e) {
    throw Error(ErrorKind::conflict, std::string("cannot own ") + api::kBusName + " on the " + bus +
                                         " bus (another runscoped, or the policy): " + e.getMessage());
  }
  auto backend = driver::make_backend(cfg, decision, {layout, own});
  auto cpu = make_cpusets(cfg, decision, *backend, layout, own);
  ExecShimLauncher launcher(default_shim_path());
  auto options = manager_options(cfg, decision);
  options.cpusets_off_reason = cpu.off_reason;
  TaskManager manager(backend->backend(), cpu.cpusets.get(), launcher, system_clock(), std::move(options),
                      [](const std::string& line) { spdlog::info("{}", line); });
  manager.recover();
  if (cpu.cpusets) cpu.cpusets->start();
  {
    api::ManagerObject object(*connection, manager, driver::parse_task_spec_json);
    connection->enterEventLoopAsync();
    auto tasks = manager.list(Caller{}).size();
    notify.ready(fmt::format("serving on the {} bus; manager {}; {} task(s) recovered", bus,
                             driver::to_string(decision.kind), tasks));
    spdlog::info("serving {} on the {} bus (manager {}, {} task(s) recovered)", api::kBusName, bus,
                 driver::to_string(decision.kind), tasks);
    serve(args, cfg, signals, notify, cpu.cpusets.get());
    notify.stopping();
    connection->leaveEventLoop();
  }
  connection->releaseName(api::kBusName);
  manager.shutdown(true);
  return 0;
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

}  // namespace runscope::daemon
