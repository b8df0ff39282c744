#include "cli/exec.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include "cgroup/migration_primer.hpp"
#include "cli/exec_registry.hpp"
#include "cli/exec_signals.hpp"
#include "cli/task_flags.hpp"
#include "common/units.hpp"
#include "wiring/backend_factory.hpp"
#include "driver/runner.hpp"
#include "driver/shim_protocol.hpp"
#include "driver/task_compile.hpp"
#include "systemd/sync_manager.hpp"

extern char** environ;

namespace runscope::cli {
namespace {

namespace fs = std::filesystem;

struct ExecOptions {
  TaskFlags flags;
  std::string cpuset, manager, status_file;
  bool no_cgroups = false;
  bool cgroupfs_v2 = false;  // hidden: the v2 cgroupfs backend on a hybrid host's cgroup2 mount
};

// Everything decided from the options and config before anything is made.
struct ExecPlan {
  driver::CompiledTask task;
  std::string memory_max;  // as given, for the OOM message
  driver::ManagerQuery query;
  bool no_cgroups;
};

config::ManagerChoice parse_manager(const std::string& text, config::ManagerChoice fallback) {
  if (text.empty()) return fallback;
  if (text == "auto") return config::ManagerChoice::automatic;
  if (text == "cgroupfs") return config::ManagerChoice::cgroupfs;
  if (text == "systemd") return config::ManagerChoice::systemd;
  throw Error(ErrorKind::invalid_argument, "--manager: '" + text + "' is not one of auto, cgroupfs, systemd");
}

std::optional<driver::Credentials> resolve_user(const std::optional<std::string>& user) {
  if (!user) return std::nullopt;
  try {
    return driver::resolve_user(*user);
  } catch (const Error& e) {
    throw Error(ErrorKind::invalid_argument, std::string("--user: ") + e.what());
  }
}

std::optional<CpuSet> parse_cpuset(const std::string& text) {
  if (text.empty()) return std::nullopt;
  CpuSet cpus;
  try {
    cpus = CpuSet::parse(text);
  } catch (const Error& e) {
    throw Error(ErrorKind::invalid_argument, std::string("--cpuset: ") + e.what());
  }
  if (cpus.empty()) throw Error(ErrorKind::invalid_argument, "--cpuset: the set is empty");
  return cpus;
}

ExecPlan make_plan(ExecOptions o, const config::Config& cfg) {
  if (o.no_cgroups && (!o.manager.empty() || o.cgroupfs_v2)) {
    throw Error(ErrorKind::invalid_argument, "--no-cgroups cannot be combined with --manager or --cgroupfs-v2");
  }
  // A relative directory is runscope's own, as in a shell; the spec holds absolute ones only.
  if (!o.flags.chdir.empty()) o.flags.chdir = fs::absolute(o.flags.chdir).lexically_normal().string();
  auto spec = task_spec_from_flags(o.flags);  // the same function and validator as `run`
  std::vector<std::string> base_env;
  for (char** e = environ; *e != nullptr; ++e) base_env.emplace_back(*e);
  ExecPlan plan{driver::compile_task(spec, {std::move(base_env), cfg.task.kill_signal, cfg.task.kill_timeout},
                                     resolve_user(spec.user)),
                o.flags.memory_max, {parse_manager(o.manager, cfg.cgroups.manager), o.cgroupfs_v2}, o.no_cgroups};
  plan.task.limits.cpuset = parse_cpuset(o.cpuset);
  return plan;
}

// exec's cgroups live beside runscoped's, never among them: runscoped removes every cgroup under
// its own parent that none of its tasks owns when it starts. "/runscope" -> "/runscope-exec",
// "runscope.slice" -> "runscope-exec.slice".
std::string exec_parent(const std::string& parent) {
  constexpr std::string_view kSlice = ".slice";
  if (parent.ends_with(kSlice)) return parent.substr(0, parent.size() - kSlice.size()) + "-exec.slice";
  return parent + "-exec";
}

// The status file is opened (emptied) before anything is made, so a bad path is an error up
// front and a stale verdict never survives a run; the verdict is written once the task is gone.
UniqueFd open_status_file(const std::string& path) {
  if (path.empty()) return {};
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644));
  if (!fd) {
    throw Error(ErrorKind::invalid_argument, "--status-file: cannot open '" + path + "': " + std::strerror(errno), errno);
  }
  return fd;
}

nlohmann::json status_json(const driver::RunningTask& task, const driver::Verdict& verdict, const std::string& manager) {
  auto j = verdict.to_json();
  j["alloc"] = task.id().alloc();
  j["task"] = task.id().task();
  j["state"] = verdict.oom_killed ? "oom_killed" : task.stop_requested() ? "killed" : "exited";
  j["manager"] = manager;
  j[manager == "systemd" ? "unit" : "cgroup"] = task.location();
  return j;
}

void report(const driver::RunningTask& task, const ExecPlan& plan, const std::string& manager, const UniqueFd& status) {
  const auto verdict = task.verdict();
  if (verdict.oom_killed) {
    const std::string limit = plan.memory_max.empty()
                                  ? "no --memory-max was set: memory ran out for a cgroup above it"
                                  : "its memory limit is --memory-max " + plan.memory_max;
    std::fprintf(stderr, "runscope: task %s was killed by the kernel's OOM killer (%s)\n", task.id().display().c_str(),
                 limit.c_str());
  }
  if (!status) return;
  const std::string text = status_json(task, verdict, manager).dump(2) + "\n";
  if (::write(status.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::fprintf(stderr, "runscope: --status-file: cannot write the verdict: %s\n", std::strerror(errno));
  }
}

ExecEntry entry_for(const ExecPlan& plan, const driver::ManagerDecision* decision, const std::string& parent,
                    const cgroup::CgroupPaths& own) {
  ExecEntry e;
  e.alloc = plan.task.id.alloc();
  e.task = plan.task.id.task();
  e.cgroup_name = plan.task.id.cgroup_name();
  e.manager = decision ? std::string(driver::to_string(decision->kind)) : "none";
  e.version = decision ? std::string(cgroup::to_string(decision->version)) : "";
  e.parent = parent;
  e.own = own;
  e.runscope_pid = ::getpid();
  e.started_at = driver::format_time(std::chrono::system_clock::now());
  return e;
}

// The backend exec's task goes to, with what the registry entry needs to find it again.
struct ExecBackend {
  std::optional<driver::ManagerDecision> decision;  // none: --no-cgroups
  std::string parent;
  cgroup::CgroupPaths own;
  std::unique_ptr<systemd::SystemdBackend> systemd;
  std::unique_ptr<wiring::ManagedBackend> cgroupfs;
  cgroup::Backend* get() { return systemd ? systemd.get() : cgroupfs ? &cgroupfs->backend() : nullptr; }
};

config::CgroupsConfig with_parent(config::CgroupsConfig cgroups, bool v2) {
  cgroups.parent = exec_parent(config::parent_for(cgroups, v2));
  return cgroups;
}

// On a unified host where systemd may be the manager, the connection to it is made first of all:
// its handshake with systemd runs while the rest is prepared, and making it is the question
// `auto` asks (does systemd answer?), so no connection is made just to ask. It is systemd-run's
// kind: the private socket, one thread (systemd/sync_manager.hpp). Its task's scope, once empty,
// is stopped without waiting for systemd to finish (await_stop off): systemd-run waits for none.
// It also starts the kernel's wait for the attach systemd will make (cgroup/migration_primer.hpp).
struct EarlySystemd {
  std::unique_ptr<cgroup::MigrationPrimer> primer;  // joined as exec returns, its write long done
  std::unique_ptr<systemd::SystemdBackend> backend;
};

EarlySystemd connect_early(const ExecOptions& o, const config::Config& cfg, const cgroup::HostLayout& layout) {
  if (o.no_cgroups || o.cgroupfs_v2 || layout.mode != cgroup::Mode::unified) return {};
  if (o.manager.empty() ? cfg.cgroups.manager == config::ManagerChoice::cgroupfs : o.manager == "cgroupfs") return {};
  EarlySystemd early{std::make_unique<cgroup::MigrationPrimer>(cgroup::MigrationPrimerPaths{layout.unified_mount}),
                     nullptr};
  try {
    auto backend = systemd::make_sync_systemd_backend(with_parent(cfg.cgroups, true), /*await_stop=*/false);
    // Our held child is our own and unreaped, so its pid cannot be reused: PIDs is as safe as
    // PIDFDs, and spares systemd before 253 a refused call at every start.
    backend->note_pidfd_support(systemd::SystemdBackend::PidfdSupport::refused);
    early.backend = std::move(backend);
  } catch (const Error& e) {
    spdlog::debug("systemd does not answer: {}", e.what());
  }
  return early;
}

ExecBackend make_exec_backend(const ExecPlan& plan, const config::Config& cfg, const cgroup::HostLayout& layout,
                              std::unique_ptr<systemd::SystemdBackend> early) {
  ExecBackend b;
  b.decision = driver::choose_manager(plan.query, layout, [&early] { return early != nullptr; });
  const bool v2 = b.decision->version == cgroup::Version::v2;
  b.parent = exec_parent(config::parent_for(cfg.cgroups, v2));
  if (b.decision->kind == driver::ManagerKind::systemd) {
    b.systemd = std::move(early);
    return b;
  }
  b.own = cgroup::own_cgroups();
  auto exec_cfg = cfg;
  exec_cfg.cgroups = with_parent(cfg.cgroups, v2);
  b.cgroupfs = wiring::make_backend(exec_cfg, *b.decision, {layout, b.own});
  return b;
}

int run_exec(const Globals& globals, const ExecOptions& options) {
  ForegroundSignals signals;  // first: every thread made later inherits the mask
  auto cfg = load(globals);
  const auto layout = options.no_cgroups ? cgroup::HostLayout{} : driver::detect_layout();
  auto early = connect_early(options, cfg, layout);
  const ExecPlan plan = make_plan(options, cfg);
  const UniqueFd status = open_status_file(options.status_file);
  ExecBackend backend;
  if (plan.no_cgroups) {
    // Orphans of the task's group come to us, so its cleanup can reap them instead of waiting for
    // PID 1 to.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  } else {
    backend = make_exec_backend(plan, cfg, layout, std::move(early.backend));
  }
  const auto* decision = backend.decision ? &*backend.decision : nullptr;
  auto registration = ExecRegistration::publish(registry_dir(), entry_for(plan, decision, backend.parent, backend.own));
  driver::CloneSpawner spawner;
  driver::Runner runner(backend.get(), spawner, system_clock(), driver::RunnerOptions{cfg.task.denied_uids});
  std::unique_ptr<driver::RunningTask> task;
  try {
    task = runner.start(plan.task.id, plan.task.limits, plan.task.spawn, plan.task.kill);
  } catch (...) {
    if (registration) registration->release();  // the runner left nothing behind
    throw;
  }
  if (registration) registration->started(task->location(), task->pid());
  const auto ended = supervise(*task, signals);
  if (registration) registration->release();  // finished: the task and its cgroup are gone
  report(*task, plan, decision ? std::string(driver::to_string(decision->kind)) : "none", status);
  if (early.primer) {
    const int err = early.primer->finish();  // joins: its write ended with the grace period
    if (err == 0) {
      spdlog::debug("primed the cgroup migration lock");
    } else {
      spdlog::debug("priming the cgroup migration lock: {}", std::strerror(err));
    }
  }
  return ended.shell_code();
}

}  // namespace

Command add_exec(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<ExecOptions>();
  auto* sub = app.add_subcommand("exec", "Run a command in a fresh cgroup in the foreground");
  add_task_flags(*sub, o->flags, FlagsFor::exec);
  sub->add_option("--cpuset", o->cpuset, "CPUs, e.g. 0-1,3");
  sub->add_option("--status-file", o->status_file, "Write the verdict (JSON, as `inspect` shows it) to this file");
  sub->add_option("--manager", o->manager, "auto, cgroupfs or systemd (default: config cgroups.manager)");
  sub->add_flag("--no-cgroups", o->no_cgroups, "No cgroup: kill the process group instead (see docs/driver.md)");
  sub->add_flag("--cgroupfs-v2", o->cgroupfs_v2, "Test only: v2 cgroupfs backend on a hybrid host")->group("");
  return {sub, [&globals, o] { return run_exec(globals, *o); }};
}

}  // namespace runscope::cli
