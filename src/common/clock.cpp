#include "common/clock.hpp"

#include <thread>

namespace runscope {

SteadyClock::time_point SteadyClock::now() const { return std::chrono::steady_clock::now(); }
void SteadyClock::sleep_for(std::chrono::nanoseconds d) { std::this_thread::sleep_for(d); }

Clock& system_clock() {
  static SteadyClock clock;
  return clock;
}

}  // namespace runscope
