// The cgroupfs manager's one entry point: picks the v2 backend on unified hosts and the v1
// backend on hybrid and legacy ones (as the reference design does).
#pragma once

#include <memory>
#include <string>

#include "cgroup/cgroup.hpp"
#include "cgroup/host.hpp"
#include "common/clock.hpp"

namespace runscope::cgroup {

// `parent` is the configured [cgroups] parent. On v2 it is a folder below the cgroup2 mount (a
// leading '/' is ignored); on v1 see V1Options::parent.
std::unique_ptr<Backend> make_cgroupfs_backend(const HostLayout& layout, const CgroupPaths& own,
                                               const std::string& parent, Clock& clock = system_clock());

}  // namespace runscope::cgroup
