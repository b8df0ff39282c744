// The CLI's side of org.runscope1.Manager: one method per D-Bus method, with the daemon's named
// errors turned back into runscope::Error of the same kind (so exit codes match `exec`), and a
// missing daemon turned into one line that says how to start it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"
#include "driver/enter_spec.hpp"

namespace sdbus {
class IConnection;
class IProxy;
class Error;
}  // namespace sdbus

namespace runscope::api {

struct TaskEntry {
  std::string alloc, task, state;
  std::uint32_t pid = 0;
};

struct StateChange {
  std::string alloc, task, state;
  int exit_code = -1;  // -1: none
  int signal = 0;
  bool oom_killed = false;
};

class ManagerClient {
 public:
  // `bus`: system, session or an address (see api/bus.hpp). Throws Error(unsupported) with the
  // start hint when the bus can't be reached.
  explicit ManagerClient(const std::string& bus);
  ~ManagerClient();
  ManagerClient(const ManagerClient&) = delete;
  ManagerClient& operator=(const ManagerClient&) = delete;

  TaskId start(const std::string& spec_json);
  void stop(const TaskId& id, std::optional<Duration> timeout);
  void signal(const TaskId& id, int sig);
  void destroy(const TaskId& id);
  nlohmann::json inspect(const TaskId& id);
  std::vector<TaskEntry> list();
  std::map<std::string, std::uint64_t> stats(const TaskId& id);
  nlohmann::json events(const TaskId& id);
  nlohmann::json logs(const TaskId& id);
  // The task's "stdout" or "stderr" log file, opened by runscoped for its owner (OpenTaskLog).
  UniqueFd open_log(const TaskId& id, const std::string& stream);
  nlohmann::json cpu_pool();
  std::map<std::string, std::string> fingerprint();
  std::string version();
  // EnterTask: runs the command in the running task with `in`, `out`, `err` as its fds (the bus
  // passes copies); returns when it ends: its exit code, or 128+N for signal N. No timeout: the
  // command may run as long as it likes. Blocks this client (use a client of its own).
  int enter(const TaskId& id, const driver::EnterSpec& spec, int in, int out, int err);
  // Whether this runscoped offers EnterTask (older ones do not): asks its introspection data.
  bool can_enter();

  // Delivers TaskStateChanged signals (the caller's tasks; root: all) from now on; they arrive
  // while pump() runs. Asks runscoped again (WatchTasks) whenever a new runscoped takes the name.
  void watch(std::function<void(const StateChange&)> on_change);
  // Processes bus traffic for up to `budget` (returns earlier once something was handled).
  void pump(std::chrono::milliseconds budget);

  // What a failed call means for the user: the daemon's own errors keep their kind; a missing
  // daemon, a refusal by the bus policy and other bus errors get a message that says so.
  Error translate(const sdbus::Error& error) const;

 private:
  template <typename Call>
  auto call(Call body);

  std::string bus_;
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<sdbus::IProxy> proxy_;
  std::function<void(const StateChange&)> on_change_;
  std::unique_ptr<sdbus::IProxy> bus_proxy_;  // NameOwnerChanged of org.runscope1
  bool rewatch_ = false;                     // a new runscoped: ask it for signals from pump()
};

// The line shown when the daemon is not there, naming the bus.
std::string daemon_missing_hint(const std::string& bus);

}  // namespace runscope::api
