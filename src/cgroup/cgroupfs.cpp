#include "cgroup/cgroupfs.hpp"

#include "cgroup/v1_backend.hpp"
#include "cgroup/v2_backend.hpp"

namespace runscope::cgroup {

std::unique_ptr<Backend> make_cgroupfs_backend(const HostLayout& layout, const CgroupPaths& own,
                                               const std::string& parent, Clock& clock) {
  if (layout.version() == Version::v2) {
    return make_v2_backend(V2Options{layout.unified_mount, std::filesystem::path(parent).relative_path(), &clock,
                                     CgroupFsOps::kernel()});
  }
  return make_v1_backend(V1Options{layout, own, parent, &clock, CgroupFsOps::kernel(), "/proc"});
}

}  // namespace runscope::cgroup
