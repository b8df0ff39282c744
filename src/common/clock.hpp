// The clock seam: logic that waits (kill deadlines, polling for an empty cgroup) takes a Clock,
// so unit tests run against a fake one that advances instantly.
#pragma once

#include <chrono>

namespace runscope {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  virtual void sleep_for(std::chrono::nanoseconds d) = 0;
};

class SteadyClock final : public Clock {
 public:
  time_point now() const override;
  void sleep_for(std::chrono::nanoseconds d) override;
};

// A process-wide SteadyClock for production wiring.
Clock& system_clock();

// Advances only when slept on or told to; for tests.
class FakeClock final : public Clock {
 public:
  time_point now() const override { return now_; }
  void sleep_for(std::chrono::nanoseconds d) override { now_ += d; }
  void advance(std::chrono::nanoseconds d) { now_ += d; }

 private:
  time_point now_{};
};

// A point in time on a given clock.
class Deadline {
 public:
  Deadline(Clock& clock, std::chrono::nanoseconds budget) : clock_(&clock), at_(clock.now() + budget) {}
  bool expired() const { return clock_->now() >= at_; }
  std::chrono::nanoseconds remaining() const {
    auto left = at_ - clock_->now();
    return left.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
                            : std::chrono::nanoseconds::zero();
  }
  Clock& clock() const { return *clock_; }

 private:
  Clock* clock_;
  Clock::time_point at_;
};

}  // namespace runscope
