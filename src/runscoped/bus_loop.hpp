// The API connection's event loop, on a thread of ours, and the one place WATCHDOG=1 comes from:
// a ping proves that this loop is dispatching bus messages, so a wedged loop (a handler that never
// returns) stops the pings and systemd restarts runscoped (its tasks keep running, recovery
// reattaches them). While calls stream in, the loop pings between messages; when idle, from
// poll's timeout.
//
// Replies to asynchronous calls (an operation that ended on one of the task service's threads) are
// sent from this loop too, between messages (Outbox): no other thread competes with the loop for
// the connection, so a flood of calls can't hold a reply back behind the library's lock.
//
// sdbus-c++ 1.2's enterEventLoopAsync() lets the loop's exception escape its thread when the bus
// goes away (std::terminate: runscoped died of SIGABRT); here it is caught and reported through
// an eventfd the main loop polls.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "common/fd.hpp"
#include "common/units.hpp"

namespace runscope::runscoped {

// Work for the bus loop's thread (sending replies), queued from any thread. Once the loop is gone
// (closed), work runs at once on the caller's thread.
class Outbox : public std::enable_shared_from_this<Outbox> {
 public:
  Outbox();
  void post(std::function<void()> work);
  // A poster for api::ManagerObjectOptions::send_on_loop: keeps this outbox alive.
  std::function<void(std::function<void()>)> poster();
  int fd() const { return wake_.get(); }  // readable when work is queued
  void run_queued() noexcept;             // the loop's thread, or close()
  void close() noexcept;                  // runs what is queued; later work runs at once

 private:
  UniqueFd wake_;
  std::mutex mutex_;
  std::vector<std::function<void()>> queue_;
  bool closed_ = false;
};

struct BusLoopOptions {
  std::optional<Duration> watchdog;  // ping at least this often (half the unit's WatchdogSec=)
  std::function<void()> ping;        // sends WATCHDOG=1
  std::shared_ptr<Outbox> outbox;    // replies to send from the loop (closed when the loop ends)
};

class BusLoop {
 public:
  BusLoop(sdbus::IConnection& connection, BusLoopOptions options);
  ~BusLoop();  // leaves the loop and joins it
  BusLoop(const BusLoop&) = delete;
  BusLoop& operator=(const BusLoop&) = delete;

  int fd() const { return ended_.get(); }  // readable once the loop has ended
  std::string why() const;

 private:
  void run() noexcept;
  void serve();

  sdbus::IConnection& connection_;
  BusLoopOptions options_;
  UniqueFd wake_;   // eventfd: leave the loop
  UniqueFd ended_;  // eventfd: the loop has ended
  mutable std::mutex mutex_;
  std::string why_;
  bool leaving_ = false;
  std::thread thread_;
};

}  // namespace runscope::runscoped
