// Reading a task's cgroup by path (cgroup::Folders): its counters and its processes, at any time,
// from any thread, without its TaskCgroup and without a bus round trip. The daemon answers
// TaskStats and checks SignalTask's target this way while the task's operations run elsewhere.
#pragma once

#include <sys/types.h>

#include <vector>

#include "cgroup/cgroup.hpp"

namespace runscope::cgroup {

// Throws Error(not_found) when the task's folder is gone (the task ended and was cleaned up).
Stats read_stats(const Folders& where);
// Every process in the task's cgroup (v2: sub-folders included), sorted, deduplicated. Empty when
// the folders are gone.
std::vector<pid_t> read_pids(const Folders& where);

}  // namespace runscope::cgroup
