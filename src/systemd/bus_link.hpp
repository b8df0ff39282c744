// One live connection to the bus (internal to SdbusSystemdManager): the sdbus-c++ connection,
// the systemd manager proxy with its JobRemoved match, and the loop thread that drives them.
// When the connection breaks the link is marked dead, every waiter wakes with kDisconnected, and
// the manager makes a new link; a link is never revived.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/clock.hpp"
#include "common/fd.hpp"
#include "compat/sdbus.hpp"

namespace runscope::systemd {

inline constexpr const char* kSystemdService = "org.freedesktop.systemd1";
inline constexpr const char* kSystemdPath = "/org/freedesktop/systemd1";
inline constexpr const char* kManagerInterface = "org.freedesktop.systemd1.Manager";
inline constexpr const char* kPropertiesInterface = "org.freedesktop.DBus.Properties";

class BusLink {
 public:
  // Connects (system bus when `address` is empty), installs the JobRemoved match, calls
  // Subscribe(), and only then starts the loop thread. Throws BusError.
  explicit BusLink(const std::string& address);
  ~BusLink();
  BusLink(const BusLink&) = delete;
  BusLink& operator=(const BusLink&) = delete;

  bool dead() const;
  sdbus::IProxy& manager() { return *manager_; }
  std::unique_ptr<sdbus::IProxy> proxy_for(const std::string& object_path);

  // Sends `call` through `proxy` and waits for the reply. Throws BusError: the reply's error,
  // kDisconnected when the link dies, kJobTimeout at the deadline.
  sdbus::MethodReply call(sdbus::IProxy& proxy, sdbus::MethodCall& call, const Deadline& deadline);
  // Waits for JobRemoved of `job_path` and returns its result ("done", "failed", ...).
  std::string wait_job(const std::string& job_path, const Deadline& deadline);

  // The same two without waiting. `done` runs once on the loop thread (or, when the link dies or
  // goes, on whichever thread notices: error kDisconnected): it must be short and must not call
  // this link synchronously. The reply is null when there is an error.
  using ReplyDone = std::function<void(sdbus::MethodReply* reply, std::exception_ptr error)>;
  void call_async(sdbus::IProxy& proxy, sdbus::MethodCall& call, const Deadline& deadline, ReplyDone done);
  // The job's result once its JobRemoved arrives (at once if it has); kJobTimeout at the deadline.
  using JobDone = std::function<void(const std::string& result, std::exception_ptr error)>;
  void on_job(const std::string& job_path, const Deadline& deadline, JobDone done);

 private:
  struct JobWatch {
    Deadline deadline;
    JobDone done;
  };
  void run(const std::stop_token& stop);
  void expire_job_watches();  // loop thread: the job watches past their deadline fail
  void fail_pending(const std::string& why) noexcept;  // every async call and job watch fails
  void on_job_removed(const std::string& job_path, const std::string& result);
  void mark_dead(const std::string& why);
  void wake() const;
  void sync_with_loop() const noexcept;
  template <typename Ready>
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, const Deadline& deadline,
                  Ready ready, const std::string& what);

  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<sdbus::IProxy> manager_;
  UniqueFd wake_fd_;
  mutable std::mutex mutex_;
  // One condition variable per waiter, so an event wakes only the thread it is for (64 callers
  // in flight all woken by every JobRemoved halved throughput). All are woken when the link dies.
  std::unordered_set<std::condition_variable*> waiters_;
  std::unordered_map<std::string, std::condition_variable*> job_waiters_;  // job path -> waiter
  bool dead_ = false;
  std::string dead_reason_;
  std::unordered_map<std::string, JobWatch> job_watches_;        // job path -> its asynchronous waiter
  std::unordered_map<std::uint64_t, ReplyDone> async_calls_;    // asynchronous calls not answered yet
  std::uint64_t next_async_ = 1;
  std::unordered_map<std::string, std::string> finished_jobs_;  // job path -> result
  std::deque<std::string> finished_order_;                      // to bound finished_jobs_
  std::jthread loop_;
};

}  // namespace runscope::systemd
