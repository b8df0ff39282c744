// runscoped's face on the bus: org.runscope1.Manager at /org/runscope1 over a TaskService.
//
// The bus thread never waits for a task operation: StartTask, StopTask, DestroyTask and EnterTask hand their
// sdbus::Result to the TaskService, which answers when the operation ends (from its own
// threads); every other method answers at once from what the service has published. A spec over
// the size limit is refused before it is parsed or queued. The caller is who the bus says sent the
// message (uid, gid from its credentials), never what a spec claims.
// TaskStateChanged is emitted from a TaskService subscription owned by this object: nothing is
// emitted, queued or running for it once the destructor returns.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <string_view>

#include <sdbus-c++/sdbus-c++.h>

#include "api/manager_adaptor.h"
#include "api/worker_pool.hpp"
#include "daemon/task_service.hpp"
#include "driver/task_spec.hpp"

namespace runscope::api {

// Turns StartTask's JSON into a TaskSpec, throwing Error(invalid_argument) naming the field.
// runscoped passes driver::parse_task_spec_json.
using SpecParser = std::function<driver::TaskSpec(std::string_view json)>;

struct ManagerObjectOptions {
  std::size_t max_spec_bytes = driver::kMaxSpecBytes;  // StartTask's JSON, checked before parsing
  // Where replies to asynchronous calls and TaskStateChanged signals are sent from: runscoped hands
  // them to its bus loop (runscoped/bus_loop.hpp, Outbox), so no other thread competes with the
  // loop for the connection; unset, replies go from the thread that ended the operation and
  // signals from an emitter thread of this object.
  std::function<void(std::function<void()>)> send_on_loop;
};

class ManagerObject final : public sdbus::AdaptorInterfaces<org::runscope1::Manager_adaptor> {
 public:
  ManagerObject(sdbus::IConnection& connection, daemon::TaskService& service, SpecParser parse_spec,
                ManagerObjectOptions options = {});
  ~ManagerObject();

 private:
  void StartTask(sdbus::Result<std::string, std::string>&& result, std::string spec_json) override;
  void StopTask(sdbus::Result<>&& result, std::string alloc, std::string task, uint64_t timeout_usec) override;
  void SignalTask(const std::string& alloc, const std::string& task, const int32_t& signal) override;
  void DestroyTask(sdbus::Result<>&& result, std::string alloc, std::string task) override;
  std::string InspectTask(const std::string& alloc, const std::string& task) override;
  std::vector<sdbus::Struct<std::string, std::string, std::string, uint32_t>> ListTasks() override;
  std::map<std::string, uint64_t> TaskStats(const std::string& alloc, const std::string& task) override;
  std::string TaskEvents(const std::string& alloc, const std::string& task) override;
  std::string TaskLogs(const std::string& alloc, const std::string& task) override;
  sdbus::UnixFd OpenTaskLog(const std::string& alloc, const std::string& task, const std::string& stream) override;
  void WatchTasks() override;
  void EnterTask(sdbus::Result<int32_t>&& result, std::string alloc, std::string task, std::string spec_json,
                 sdbus::UnixFd stdin_fd, sdbus::UnixFd stdout_fd, sdbus::UnixFd stderr_fd) override;
  std::map<std::string, std::string> Fingerprint() override;
  std::string CpuPool() override;
  std::string Version() override;

  daemon::Caller caller() const;
  std::string sender() const;
  void send_state(const TaskId& id, const daemon::TaskEvent& event, uid_t owner);
  template <typename T, typename Result, typename Send>
  daemon::Reply<T> reply_to(Result&& result, Send send) const;
  void on_event(const TaskId& id, const daemon::TaskEvent& event);

  daemon::TaskService& service_;
  SpecParser parse_spec_;
  ManagerObjectOptions options_;
  // Who each sender is (its unique bus name, never reused while the bus runs): asking the bus
  // costs two round trips per call, which a flood would multiply. Bounded; the bus thread's only.
  mutable std::mutex callers_mutex_;
  mutable std::unordered_map<std::string, daemon::Caller> callers_;
  mutable std::deque<std::string> callers_order_;
  // Connections that asked for TaskStateChanged (WatchTasks), with their caller's uid: each gets
  // its own tasks' signals (root's: all), addressed to it. Bounded, oldest forgotten first.
  std::map<std::string, uid_t> watchers_;
  std::deque<std::string> watchers_order_;
  // Signals are emitted from their own thread, in order: a listener runs under the TaskManager's
  // locks, and emitting there would take the bus lock after them while a method call on the bus
  // thread takes them after the bus lock (a lock-order inversion TSan caught).
  WorkerPool signals_;
  std::unique_ptr<daemon::Subscription> subscription_;
};

// The named D-Bus error for an exception thrown by the TaskService or a parser.
sdbus::Error to_bus_error(const std::exception& error);

}  // namespace runscope::api
