#pragma once
// A test's clean-up that must run however its body ends (a failed ASSERT returns early). Declared
// after what waits for something the test holds (a future's call, a loop's join), it releases
// that first: destructors run in reverse order.

#include <utility>

namespace runscope::testing {

template <typename F>
class OnExit {
 public:
  explicit OnExit(F f) : f_(std::move(f)) {}
  OnExit(const OnExit&) = delete;
  OnExit& operator=(const OnExit&) = delete;
  ~OnExit() { f_(); }

 private:
  F f_;
};

}  // namespace runscope::testing
