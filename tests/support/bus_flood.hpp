// A hostile caller's flood, for the latency tests and the bench: ONE bus connection that keeps
// `in_flight` method calls to org.runscope1 outstanding from a thread of its own, re-issuing each
// as soon as it is answered, plus calls sent once and never re-issued (e.g. StopTask of tasks with
// an hour of grace, which stay pending). Raw sd-bus, so it is the same on every sdbus-c++ version.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

struct sd_bus;

namespace runscope::testing {

struct FloodCall {
  std::string member;                  // a method of org.runscope1.Manager
  std::vector<std::string> strings;    // its string arguments, in order
  std::optional<std::uint64_t> number;  // then one `t` argument (StopTask's timeout_usec)
};

class BusFlood {
 public:
  // Throws Error(bus) when the bus can't be reached.
  BusFlood(const std::string& address, std::vector<FloodCall> once, std::vector<FloodCall> repeat, unsigned in_flight);
  ~BusFlood();  // stops, joins, closes the connection
  BusFlood(const BusFlood&) = delete;
  BusFlood& operator=(const BusFlood&) = delete;

  std::uint64_t answered() const { return answered_.load(); }  // replies and errors to the repeated calls
  void reissue();  // internal: a repeated call was answered (the connection's thread)

 private:
  void run();
  void issue(const FloodCall& call, bool repeat);

  sd_bus* bus_ = nullptr;
  std::vector<FloodCall> once_, repeat_;
  unsigned in_flight_;
  std::size_t next_ = 0;
  std::atomic<std::uint64_t> answered_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The hostile member of issue 11, meant for a forked child of a single-threaded test or bench:
// becomes `uid` (one the bus can look up: dbus-daemon needs its groups), starts `slow_stops` tasks that ignore SIGTERM with an
// hour of grace (alloc "hostile"), asks to stop each (those calls stay pending), then floods the
// bus from one connection with reads (64 in flight). Writes "ready\n" to `report`, then its count
// of answered calls every 100 ms. Never returns (exit 2-3 when it cannot get going).
[[noreturn]] void run_hostile_member(const std::string& bus, uid_t uid, int report, int slow_stops = 8);

// Reads a member's report without blocking: `ready` once it got going; the last count, or -1.
long read_member_report(int fd, std::string& buffer, bool& ready);

}  // namespace runscope::testing
