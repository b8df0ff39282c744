#include "cgroup/fs_ops.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace runscope::cgroup {

CgroupFsOps CgroupFsOps::kernel() {
  return CgroupFsOps{
      [](const std::filesystem::path& p) { return ::mkdir(p.c_str(), 0755) == 0 ? 0 : errno; },
      [](const std::filesystem::path& p) { return ::rmdir(p.c_str()) == 0 ? 0 : errno; },
  };
}

}  // namespace runscope::cgroup
