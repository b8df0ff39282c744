// One thread that waits for everything the task service waits for: each shim's pidfd (its task
// ended), a shim's control socket while its task starts, deadlines (a stop's grace period, a
// start's timeout, the cleanup after a kill) and work posted from other threads. A stop's grace
// period therefore costs a timer entry, not a thread. Callbacks run on this thread and must not
// block: anything slow goes to the StepPool.
//
// Watches and timers are one-shot: a callback runs at most once per arming. unwatch() and
// cancel() may race with a callback that is already on its way, so callbacks re-check their
// owner's state (under its lock) before acting, and keep what they read (the fd) alive themselves.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "common/fd.hpp"

namespace runscope::daemon {

class Reactor {
 public:
  using Callback = std::function<void()>;
  using Key = std::uint64_t;  // 0 never names anything
  using TimePoint = std::chrono::steady_clock::time_point;

  Reactor();   // starts the thread
  ~Reactor();  // stop()
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Calls `ready` once `fd` is readable (or hung up). The caller keeps the fd open until it has
  // unwatched it and no callback of it can run any more.
  Key watch(int fd, Callback ready);
  void rearm(Key key);             // one more callback when readable again
  void unwatch(Key key) noexcept;  // idempotent
  // Calls `fire` once at `when` (steady clock).
  Key at(TimePoint when, Callback fire);
  void cancel(Key key) noexcept;  // idempotent
  void post(Callback work);

  // Joins the thread and drops every callback (with what they hold). Idempotent.
  void stop() noexcept;
  bool on_reactor_thread() const { return std::this_thread::get_id() == thread_.get_id(); }
  std::size_t watched() const;  // watches and timers registered (for tests and leak checks)

 private:
  struct Watch {
    int fd;
    Callback ready;
  };
  using Deadline = std::pair<TimePoint, Key>;

  void run();
  void wake() const;
  void arm_timerfd();  // mutex_ held
  void run_timers();
  void run_posted();

  UniqueFd epoll_;
  UniqueFd wake_fd_;   // eventfd: posted work or stop
  UniqueFd timer_fd_;  // armed for the earliest deadline
  mutable std::mutex mutex_;
  Key next_key_ = 1;
  std::map<Key, Watch> watches_;
  std::map<Key, Callback> timers_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;  // lazily pruned
  TimePoint armed_for_ = TimePoint::max();
  std::vector<Callback> posted_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace runscope::daemon
