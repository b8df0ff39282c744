#include "daemon/fd_limit.hpp"

#include "common/error.hpp"

namespace runscope::daemon {

rlimit raise_fd_limit() {
  rlimit before{};
  if (::getrlimit(RLIMIT_NOFILE, &before) < 0) throw_system_error("getrlimit RLIMIT_NOFILE");
  rlimit raised = before;
  raised.rlim_cur = before.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &raised) < 0) throw_system_error("setrlimit RLIMIT_NOFILE");
  return before;
}

}  // namespace runscope::daemon
