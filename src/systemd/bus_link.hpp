// One live connection to the bus (internal to SdbusSystemdManager): the sdbus-c++ connection,
// the systemd manager proxy with its JobRemoved match, and the loop thread that drives them.
// When the connection breaks the link is marked dead, every waiter wakes with kDisconnected, and
// the manager makes a new link; a link is never revived.
#pragma once

#include <condition_variable>
#include <deque>
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

 private:
  void run(const std::stop_token& stop);
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
  std::unordered_map<std::string, std::string> finished_jobs_;  // job path -> result
  std::deque<std::string> finished_order_;                      // to bound finished_jobs_
  std::jthread loop_;
};

}  // namespace runscope::systemd
