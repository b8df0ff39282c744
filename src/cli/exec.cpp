#include "cli/exec.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "common/units.hpp"
#include "wiring/backend_factory.hpp"
#include "driver/runner.hpp"

extern char** environ;

namespace runscope::cli {
namespace {

constexpr std::uint64_t kMaxCpuWeight = 10000;

struct ExecOptions {
  std::string alloc, task, memory_max, cpu_weight, pids_max, cpuset, kill_signal, kill_timeout, user, chdir, manager;
  std::vector<std::string> env, command;
  bool no_cgroups = false;
  bool cgroupfs_v2 = false;  // hidden: the v2 cgroupfs backend on a hybrid host's cgroup2 mount
};

// Everything decided from the options and config before anything is made.
struct ExecPlan {
  TaskId id;
  cgroup::Limits limits;
  driver::SpawnSpec spec;
  driver::KillPolicy kill;
  driver::ManagerQuery query;
  bool no_cgroups;
};

std::uint64_t parse_count(const std::string& text, const std::string& option, std::uint64_t min, std::uint64_t max) {
  std::size_t used = 0;
  std::uint64_t value = 0;
  try {
    if (!text.empty() && text.front() != '-') value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || value < min || value > max) {
    throw Error(ErrorKind::invalid_argument, option + ": '" + text + "' is not a whole number in " +
                                                 std::to_string(min) + ".." + std::to_string(max));
  }
  return value;
}

cgroup::Limits parse_limits(const ExecOptions& o) {
  cgroup::Limits limits;
  if (!o.memory_max.empty()) limits.memory_max = parse_size(o.memory_max, "--memory-max");
  if (!o.cpu_weight.empty()) limits.cpu_weight = parse_count(o.cpu_weight, "--cpu-weight", 1, kMaxCpuWeight);
  if (!o.pids_max.empty()) limits.pids_max = parse_count(o.pids_max, "--pids-max", 1, UINT32_MAX);
  if (!o.cpuset.empty()) {
    try {
      limits.cpuset = CpuSet::parse(o.cpuset);
    } catch (const Error& e) {
      throw Error(ErrorKind::invalid_argument, std::string("--cpuset: ") + e.what());
    }
    if (limits.cpuset->empty()) throw Error(ErrorKind::invalid_argument, "--cpuset: the set is empty");
  }
  return limits;
}

std::vector<std::string> task_environment(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& kv : overrides) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(ErrorKind::invalid_argument, "--env: '" + kv + "' is not KEY=VALUE");
    }
    auto prefix = kv.substr(0, eq + 1);
    std::erase_if(env, [&](const std::string& s) { return s.rfind(prefix, 0) == 0; });
    env.push_back(kv);
  }
  return env;
}

config::ManagerChoice parse_manager(const std::string& text, config::ManagerChoice fallback) {
  if (text.empty()) return fallback;
  if (text == "auto") return config::ManagerChoice::automatic;
  if (text == "cgroupfs") return config::ManagerChoice::cgroupfs;
  if (text == "systemd") return config::ManagerChoice::systemd;
  throw Error(ErrorKind::invalid_argument, "--manager: '" + text + "' is not one of auto, cgroupfs, systemd");
}

std::optional<driver::Credentials> parse_user(const std::string& text) {
  if (text.empty()) return std::nullopt;
  auto colon = text.find(':');
  try {
    if (colon == std::string::npos) return driver::resolve_credentials(text);
    return driver::resolve_credentials(text.substr(0, colon), std::string_view(text).substr(colon + 1));
  } catch (const Error& e) {
    throw Error(ErrorKind::invalid_argument, std::string("--user: ") + e.what());
  }
}

ExecPlan make_plan(const ExecOptions& o, const config::Config& cfg) {
  if (o.command.empty()) throw Error(ErrorKind::invalid_argument, "exec: no command given");
  std::string task = o.task.empty() ? std::filesystem::path(o.command.front()).filename().string() : o.task;
  ExecPlan plan{TaskId(o.alloc.empty() ? random_uuid() : o.alloc, task), parse_limits(o), {}, {}, {}, o.no_cgroups};
  plan.spec.argv = o.command;
  plan.spec.env = task_environment(o.env);
  plan.spec.cwd = o.chdir;
  plan.spec.credentials = parse_user(o.user);
  plan.kill.signal = o.kill_signal.empty() ? cfg.task.kill_signal : config::parse_signal(o.kill_signal);
  plan.kill.timeout = o.kill_timeout.empty() ? cfg.task.kill_timeout : parse_duration(o.kill_timeout, "--kill-timeout");
  plan.query = {parse_manager(o.manager, cfg.cgroups.manager), o.cgroupfs_v2};
  if (o.no_cgroups && (!o.manager.empty() || o.cgroupfs_v2)) {
    throw Error(ErrorKind::invalid_argument, "--no-cgroups cannot be combined with --manager or --cgroupfs-v2");
  }
  return plan;
}

// SIGINT and SIGTERM are blocked (so children start with them blocked too until the spawner
// resets the mask) and read from a signalfd in the supervision loop.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    if (::sigprocmask(SIG_BLOCK, &set_, &old_) != 0) throw_system_error("sigprocmask");
    fd_ = UniqueFd(::signalfd(-1, &set_, SFD_CLOEXEC));
    if (!fd_) throw_system_error("signalfd");
  }
  ~StopSignals() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
  int fd() const { return fd_.get(); }
  int take() {
    signalfd_siginfo info{};
    return ::read(fd_.get(), &info, sizeof info) == sizeof info ? static_cast<int>(info.ssi_signo) : 0;
  }

 private:
  sigset_t set_{}, old_{};
  UniqueFd fd_;
};

driver::ExitStatus supervise(driver::RunningTask& task, StopSignals& signals) {
  for (;;) {
    pollfd fds[2] = {{task.pidfd(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw_system_error("poll");
    }
    if (fds[0].revents != 0) return task.wait();
    if (fds[1].revents != 0) {
      int sig = signals.take();
      spdlog::warn("received signal {}: stopping task {}", sig, task.id().display());
      return task.stop();
    }
  }
}

int run_exec(const Globals& globals, const ExecOptions& options) {
  auto cfg = load(globals);
  ExecPlan plan = make_plan(options, cfg);
  StopSignals signals;
  std::unique_ptr<wiring::ManagedBackend> managed;
  if (plan.no_cgroups) {
    // Orphans of the task's group come to us, so its cleanup can reap them instead of waiting for
    // PID 1 to.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  } else {
    auto layout = driver::detect_layout();
    auto decision = driver::choose_manager(plan.query, layout, wiring::systemd_answers);
    managed = wiring::make_backend(cfg, decision, {layout, cgroup::own_cgroups()});
  }
  driver::CloneSpawner spawner;
  driver::Runner runner(managed ? &managed->backend() : nullptr, spawner, system_clock(),
                        driver::RunnerOptions{cfg.task.denied_uids});
  auto task = runner.start(plan.id, plan.limits, plan.spec, plan.kill);
  return supervise(*task, signals).shell_code();
}

}  // namespace

Command add_exec(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<ExecOptions>();
  auto* sub = app.add_subcommand("exec", "Run a command in a fresh cgroup in the foreground");
  sub->add_option("--alloc", o->alloc, "Allocation ID (default: a random UUID)");
  sub->add_option("--task", o->task, "Task name (default: the command's basename)");
  sub->add_option("--memory-max", o->memory_max, "Memory limit, e.g. 512M");
  sub->add_option("--cpu-weight", o->cpu_weight, "CPU weight 1..10000");
  sub->add_option("--pids-max", o->pids_max, "Process count limit");
  sub->add_option("--cpuset", o->cpuset, "CPUs, e.g. 0-1,3");
  sub->add_option("--kill-signal", o->kill_signal, "Graceful stop signal (default: config task.kill_signal)");
  sub->add_option("--kill-timeout", o->kill_timeout, "Grace period before SIGKILL (default: config)");
  sub->add_option("--user", o->user, "Run as USER[:GROUP] (name or number)");
  sub->add_option("--chdir", o->chdir, "Working directory");
  sub->add_option("--env", o->env, "Set KEY=VALUE in the command's environment (repeatable)");
  sub->add_option("--manager", o->manager, "auto, cgroupfs or systemd (default: config cgroups.manager)");
  sub->add_flag("--no-cgroups", o->no_cgroups, "No cgroup: kill the process group instead (see docs/driver.md)");
  sub->add_flag("--cgroupfs-v2", o->cgroupfs_v2, "Test only: v2 cgroupfs backend on a hybrid host")->group("");
  sub->add_option("command", o->command, "The command and its arguments (after --)")->required();
  return {sub, [&globals, o] { return run_exec(globals, *o); }};
}

}  // namespace runscope::cli
