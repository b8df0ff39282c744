// The daemon holds a few fds per task (the shim's pidfd, its cgroup handles), so the default soft
// RLIMIT_NOFILE of a service (1024) ran out near 500 tasks (measured: bench/daemon-bench.sh).
// runscoped raises its soft limit to the hard one (524288 under systemd) and gives every shim,
// and so every task, the original soft limit back: programs that use select() need it.
#pragma once

#include <sys/resource.h>

namespace runscope::daemon {

// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the limits it had before.
rlimit raise_fd_limit();

}  // namespace runscope::daemon
