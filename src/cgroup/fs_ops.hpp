// The two cgroupfs operations whose side effects belong to the kernel: mkdir (which makes the
// control files appear) and rmdir (which removes a folder that still holds them). Backends take
// them as a seam so unit tests can run against fake trees that emulate the kernel.
#pragma once

#include <filesystem>
#include <functional>

namespace runscope::cgroup {

struct CgroupFsOps {
  // Each returns 0 or an errno value; neither throws.
  std::function<int(const std::filesystem::path&)> make_dir;
  std::function<int(const std::filesystem::path&)> remove_dir;

  static CgroupFsOps kernel();  // plain mkdir(2) / rmdir(2)
};

}  // namespace runscope::cgroup
