#include "faults/fault_harness.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/shim_protocol.hpp"
#include "support/held_child.hpp"

namespace runscope::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::optional<std::string> fault_skip_reason() {
  if (auto why = manager_host_skip_reason()) return why;
  if (!dbus_daemon_available()) return "dbus-daemon is not installed";
#ifndef RUNSCOPED_BINARY
  return "runscoped was not built";
#else
  return std::nullopt;
#endif
}

std::uint64_t fault_seed() {
  std::uint64_t seed = 0;
  if (const char* s = std::getenv("RUNSCOPE_FAULT_SEED")) {
    seed = std::stoull(s);
  } else {
    seed = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  }
  std::cout << "RUNSCOPE_FAULT_SEED=" << seed << " (set it to replay this run)" << std::endl;
  return seed;
}

bool ProcessId::alive() const { return process_alive(pid) && driver::process_start_time(pid) == start_time; }

std::optional<ProcessId> identify(pid_t pid) {
  auto start = driver::process_start_time(pid);
  if (!start) return std::nullopt;
  return ProcessId{pid, *start};
}

Bystanders::Bystanders(const V1Env& env, const std::string& tag, int count) {
  if (env.layout.v1_mounts.count("pids")) {
    sibling_ = env.layout.v1_mounts.at("pids") / fs::path(env.own.at("pids")).relative_path() /
               ("runscope-test-" + std::to_string(::getpid()) + "-" + tag + "-bystanders");
    fs::create_directories(sibling_);
  }
  for (int i = 0; i < count; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) throw_system_error("fork a bystander");
    if (pid == 0) {
      ::execl("/bin/sleep", "sleep", "100000", nullptr);
      ::_exit(127);
    }
    if (i % 2 == 1 && !sibling_.empty()) write_file(sibling_ / "cgroup.procs", std::to_string(pid));
    auto id = identify(pid);
    if (!id) throw Error(ErrorKind::system, "bystander " + std::to_string(pid) + " vanished at once");
    procs_.push_back(One{*id, read_file(fs::path("/proc") / std::to_string(pid) / "cgroup")});
  }
}

Bystanders::~Bystanders() {
  for (const auto& p : procs_) {
    if (p.id.alive()) ::kill(p.id.pid, SIGKILL);
    ::waitpid(p.id.pid, nullptr, 0);
  }
  if (!sibling_.empty()) ::rmdir(sibling_.c_str());
}

std::vector<std::string> Bystanders::disturbed() const {
  std::vector<std::string> out;
  for (const auto& p : procs_) {
    std::string name = "bystander " + std::to_string(p.id.pid);
    if (!p.id.alive()) {
      out.push_back(name + " is gone");
    } else if (read_file_if_exists(fs::path("/proc") / std::to_string(p.id.pid) / "cgroup") != p.cgroup) {
      out.push_back(name + " was moved to another cgroup");
    }
  }
  return out;
}

FaultDaemon::FaultDaemon(const std::string& tag, const fs::path& state_dir, const std::string& extra_config)
    : env_(make_v1_env(tag)), state_dir_(state_dir.empty() ? tmp_.path() / "state" : state_dir) {
  bus_ = std::make_unique<PrivateBus>();
  notify_ = std::make_unique<NotifySocket>(tmp_.path());
  config_ = tmp_.path() / "runscope.toml";
  std::ofstream(config_) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_.parent << "\"\n"
                         << "[daemon]\nstate_dir = \"" << state_dir_.string() << "\"\n"
                         << extra_config;
}

FaultDaemon::~FaultDaemon() {
  client_.reset();
  if (daemon_) daemon_->terminate();  // tasks keep running; remove_parent() kills them
  daemon_.reset();
  env_.remove_parent();
  bus_.reset();
}

void FaultDaemon::start() {
  ++starts_;  // a log per run: the spawner truncates its output file
  daemon_ = std::make_unique<DaemonProcess>(bus_->address(), config_, tmp_.path() / ("daemon-" + std::to_string(starts_) + ".log"),
                                            *notify_);
  if (!notify_->wait_for("READY=1", 60s)) {
    throw Error(ErrorKind::timeout, "runscoped did not say READY=1; its log:\n" + log());
  }
}

void FaultDaemon::kill9() {
  if (!daemon_) return;
  daemon_->process().signal(SIGKILL);
  daemon_->process().reap();
  daemon_.reset();
}

void FaultDaemon::terminate() {
  if (!daemon_) return;
  daemon_->terminate();
  daemon_.reset();
}

void FaultDaemon::replace_bus() {
  client_.reset();
  bus_.reset();
  bus_ = std::make_unique<PrivateBus>();
}

std::optional<driver::ExitStatus> FaultDaemon::wait_exit(std::chrono::seconds budget) {
  if (!daemon_) return std::nullopt;
  SteadyClock clock;
  auto status = daemon_->process().wait(Deadline(clock, budget));
  if (status) daemon_.reset();
  return status;
}

pid_t FaultDaemon::pid() const { return daemon_ ? daemon_->process().pid() : -1; }

api::ManagerClient& FaultDaemon::client() {
  if (!client_) client_ = std::make_unique<api::ManagerClient>(bus_->address());
  return *client_;
}

fs::path FaultDaemon::task_dir(const TaskId& id) const { return state_dir_ / "tasks" / id.cgroup_name(); }

std::string FaultDaemon::log() const {
  std::string all;
  for (int i = 1; i <= starts_; ++i) {
    all += read_file_if_exists(tmp_.path() / ("daemon-" + std::to_string(i) + ".log")).value_or("");
  }
  return all;
}

std::set<std::string> FaultDaemon::cgroups() const {
  std::set<std::string> out;
  for (const auto& p : env_.leftovers()) out.insert(p.filename().string());
  return out;
}

nlohmann::json shell_spec(const std::string& alloc, const std::string& task, const std::string& script) {
  return {{"alloc", alloc}, {"task", task}, {"config", {{"command", "/bin/sh"}, {"args", {"-c", script}}}}};
}

std::map<TaskId, std::string> listed(api::ManagerClient& client) {
  std::map<TaskId, std::string> out;
  for (const auto& t : client.list()) out.insert_or_assign(TaskId(t.alloc, t.task), t.state);
  return out;
}

}  // namespace runscope::testing
