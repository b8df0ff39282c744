// A TaskService in memory, for the bus and CLI tests: it keeps tasks in a map, applies the
// caller rules (non-root callers see and act on only their own tasks), emits events to its
// subscribers, and lets a test finish a task, fail the next start, or hold starts (their replies
// wait until released, as a real start waits for its shim).
// A seam behind the real interface, not a mock of the bus.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>

#include "common/error.hpp"
#include "daemon/task_service.hpp"

namespace runscope::testing {

class FakeTaskService final : public daemon::TaskService {
 public:
  using TaskService::destroy;
  using TaskService::start;
  using TaskService::stop;
  void start(daemon::SpecSource spec, const daemon::Caller& caller, daemon::Reply<TaskId> done) override;
  void stop(const TaskId& id, std::optional<Duration> timeout, const daemon::Caller& caller,
            daemon::Reply<> done) override;
  void signal(const TaskId& id, int sig, const daemon::Caller& caller) override;
  void destroy(const TaskId& id, const daemon::Caller& caller, daemon::Reply<> done) override;
  daemon::TaskInfo inspect(const TaskId& id, const daemon::Caller& caller) const override;
  std::vector<daemon::TaskInfo> list(const daemon::Caller& caller) const override;
  cgroup::Stats stats(const TaskId& id, const daemon::Caller& caller) const override;
  std::vector<daemon::TaskEvent> events(const TaskId& id, const daemon::Caller& caller) const override;
  daemon::LogInfo logs(const TaskId& id, const daemon::Caller& caller) const override;
  UniqueFd open_log(const TaskId& id, const std::string& stream, const daemon::Caller& caller) const override;
  daemon::CpuPoolInfo cpu_pool() const override;
  std::map<std::string, std::string> fingerprint() const override;
  std::unique_ptr<daemon::Subscription> subscribe(Listener listener) override;
  using TaskService::enter;
  // Writes "entered COMMAND ARGS..." to the request's stdout and answers with the spec's env
  // STATUS (default 0): enough to see the descriptors and the spec cross the bus.
  void enter(const TaskId& id, daemon::EnterRequest request, const daemon::Caller& caller,
             daemon::Reply<int> done) override;

  // Test controls.
  void finish(const TaskId& id, int exit_code);  // the task exits with this code
  void fail_next_start(Error error);
  void hold_starts();     // starts are answered only at release_starts()
  void release_starts();
  std::size_t waiting_starts() const;
  // fingerprint() blocks until unwedge(): a handler that never returns, for the bus loop's tests.
  void wedge();
  void unwedge();
  bool wedged_call_waiting() const;
  std::size_t subscribers() const;
  std::optional<daemon::Caller> last_caller() const;
  std::optional<driver::TaskSpec> last_spec() const;
  std::vector<std::pair<TaskId, int>> signals_sent() const;
  std::optional<Duration> last_stop_timeout() const;
  std::filesystem::path log_dir;  // logs() points into it (file target)

 private:
  struct Task {
    daemon::TaskInfo info;
    std::vector<daemon::TaskEvent> events;
  };
  TaskId do_start(const driver::TaskSpec& spec, const daemon::Caller& caller);
  Task& find(const TaskId& id, const daemon::Caller& caller);
  const Task& find(const TaskId& id, const daemon::Caller& caller) const;
  void record(Task& task, daemon::TaskEvent event, std::unique_lock<std::mutex>& lock);
  friend class FakeSubscription;

  mutable std::mutex mutex_;
  bool held_ = false;
  bool wedged_ = false;
  bool wedge_waiting_ = false;
  mutable std::condition_variable unwedged_;
  std::vector<std::function<void()>> held_starts_;
  std::map<TaskId, Task> tasks_;
  mutable std::mutex listeners_mutex_;  // held while a listener runs, so unsubscribing waits for it
  std::map<std::uint64_t, Listener> listeners_;
  std::uint64_t next_listener_ = 0;
  std::optional<Error> next_start_error_;
  std::optional<daemon::Caller> last_caller_;
  std::optional<driver::TaskSpec> last_spec_;
  std::vector<std::pair<TaskId, int>> signals_;
  std::optional<Duration> last_stop_timeout_;
  pid_t next_pid_ = 4000;
};

// A tiny spec parser for the tests (the real one is driver::parse_task_spec_json): alloc, task,
// config, user; "task" is required and unknown fields are refused, naming the field.
driver::TaskSpec parse_test_spec(std::string_view json);

}  // namespace runscope::testing
