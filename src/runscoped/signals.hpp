// SIGHUP, SIGTERM and SIGINT, read from a signalfd by the daemon's main loop. Construct it before
// any thread starts, so every thread inherits the blocked mask and the signals reach the fd.
#pragma once

#include <signal.h>

#include "common/fd.hpp"

namespace runscope::runscoped {

class DaemonSignals {
 public:
  DaemonSignals();
  ~DaemonSignals();  // restores the old mask
  DaemonSignals(const DaemonSignals&) = delete;
  DaemonSignals& operator=(const DaemonSignals&) = delete;

  int fd() const { return fd_.get(); }
  // The next pending signal, or 0 when none is.
  int take();

 private:
  sigset_t set_{}, old_{};
  UniqueFd fd_;
};

}  // namespace runscope::runscoped
