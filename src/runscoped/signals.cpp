#include "runscoped/signals.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include "common/error.hpp"

namespace runscope::runscoped {

DaemonSignals::DaemonSignals() {
  sigemptyset(&set_);
  for (int sig : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&set_, sig);
  if (::pthread_sigmask(SIG_BLOCK, &set_, &old_) != 0) throw_system_error("pthread_sigmask");
  fd_ = UniqueFd(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd_) {
    int err = errno;
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    throw_system_error("signalfd", err);
  }
}

DaemonSignals::~DaemonSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

int DaemonSignals::take() {
  signalfd_siginfo info{};
  return ::read(fd_.get(), &info, sizeof info) == sizeof info ? static_cast<int>(info.ssi_signo) : 0;
}

}  // namespace runscope::runscoped
