// A TaskManager over this host's real v1 cgroupfs (relative, per-process parent) with the real
// runscope-shim, a temp state dir, and helpers to wait for task states through events.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "cgroup/host.hpp"
#include "cgroup/v1_backend.hpp"
#include "daemon/shim_launcher.hpp"
#include "daemon/task_manager.hpp"
#include "driver/task_spec.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::testing {

// Final states arrive as events; waits on a condition variable with a deadline.
class StateWaiter {
 public:
  explicit StateWaiter(daemon::TaskService& service);
  // True once `id` reached a final state (or `want`) within `budget`.
  bool wait_final(const TaskId& id, std::chrono::seconds budget = std::chrono::seconds(60));

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<TaskId, daemon::TaskState> last_;
  std::unique_ptr<daemon::Subscription> sub_;
};

struct V1Env {
  cgroup::HostLayout layout;
  cgroup::CgroupPaths own;
  std::string parent;
  std::unique_ptr<cgroup::Backend> make_backend(Clock& clock) const;
  // Folders left under the parent in any hierarchy (partition folders excepted).
  std::vector<std::filesystem::path> leftovers() const;
  void remove_parent() const;  // rmdir what is left, deepest first
};

// nullopt (with the reason) when this host can't run manager host tests.
std::optional<std::string> manager_host_skip_reason();
V1Env make_v1_env(const std::string& tag);

driver::TaskSpec shell_task(const std::string& alloc, const std::string& task, const std::string& script);

}  // namespace runscope::testing
