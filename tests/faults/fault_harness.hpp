// What every fault test needs: a real runscoped on a private bus over this host's v1 cgroupfs
// (relative parent runscope-test-<pid>-<tag>, a temp state dir) that the test can kill -9 and
// restart; bystander processes of the test's own that must come through untouched; a seeded RNG
// whose seed is printed and can be replayed with RUNSCOPE_FAULT_SEED.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "support/daemon_process.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"

namespace runscope::testing {

// Why this host can't run the fault tests (root, v1, shim, runscoped, dbus-daemon), or nullopt.
std::optional<std::string> fault_skip_reason();

// RUNSCOPE_FAULT_SEED if set, else a fresh one; printed either way so a failure can be replayed.
std::uint64_t fault_seed();

// A process identified by pid AND start time, so pid reuse can't pass for it.
struct ProcessId {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
  bool alive() const;  // the very same process, not a zombie
};
std::optional<ProcessId> identify(pid_t pid);

// Foreign processes: `sleep` children of the test, half of them in a sibling v1 pids cgroup
// (runscope-test-<pid>-<tag>-bystanders, beside the daemon's parent). disturbed() lists any that
// died, changed, or moved cgroup.
class Bystanders {
 public:
  Bystanders(const V1Env& env, const std::string& tag, int count = 4);
  ~Bystanders();  // SIGKILLs and reaps them, removes the sibling cgroup
  Bystanders(const Bystanders&) = delete;
  Bystanders& operator=(const Bystanders&) = delete;
  std::vector<std::string> disturbed() const;

 private:
  struct One {
    ProcessId id;
    std::string cgroup;  // /proc/PID/cgroup when started
  };
  std::vector<One> procs_;
  std::filesystem::path sibling_;
};

class FaultDaemon {
 public:
  // `extra_config`: more TOML appended after the [daemon] table (keys of [daemon]).
  FaultDaemon(const std::string& tag, const std::filesystem::path& state_dir = {}, const std::string& extra_config = "");
  ~FaultDaemon();  // kills what is left through the cgroups, removes the parent, stops the bus
  FaultDaemon(const FaultDaemon&) = delete;
  FaultDaemon& operator=(const FaultDaemon&) = delete;

  // Starts runscoped and waits for READY=1; throws with the daemon's log if it does not come.
  void start();
  void kill9();       // SIGKILL, reaped; tasks and shims keep running
  void terminate();   // SIGTERM (tasks keep running)
  // Cuts the daemon's bus: the dbus-daemon is stopped and a new one started (a new address).
  void replace_bus();
  // Waits for the daemon to exit by itself; its status, or nullopt at the deadline.
  std::optional<driver::ExitStatus> wait_exit(std::chrono::seconds budget);
  bool running() const { return daemon_ != nullptr; }
  pid_t pid() const;
  api::ManagerClient& client();

  const V1Env& env() const { return env_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  std::filesystem::path task_dir(const TaskId& id) const;
  std::string log() const;  // every run's, oldest first
  // Task cgroup folder names left under the parent (any hierarchy).
  std::set<std::string> cgroups() const;

 private:
  V1Env env_;
  TempDir tmp_;
  std::filesystem::path state_dir_;
  std::filesystem::path config_;
  std::unique_ptr<PrivateBus> bus_;
  std::unique_ptr<NotifySocket> notify_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<api::ManagerClient> client_;
  int starts_ = 0;
};

// A raw_exec spec as JSON for StartTask.
nlohmann::json shell_spec(const std::string& alloc, const std::string& task, const std::string& script);

// Every task's state as listed, by id.
std::map<TaskId, std::string> listed(api::ManagerClient& client);

}  // namespace runscope::testing
