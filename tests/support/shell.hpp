#pragma once
// Clean-up commands of the systemd tests' TearDown: their status is not a test result (the unit
// may be gone already), and glibc's _FORTIFY_SOURCE marks std::system warn_unused_result.

#include <cstdlib>
#include <string>

namespace runscope::testing {

inline void run_ignoring_status(const std::string& command) {
  [[maybe_unused]] const int status = std::system(command.c_str());
}

}  // namespace runscope::testing
