// The applier for cgroupfs: the shared and reserved partitions are folders under the parent,
// `<parent>/shared` and `<parent>/reserved/<alloc>-<task>`, in the v1 cpuset hierarchy or in the
// cgroup2 tree (the same paths the cgroupfs backends use, see cgroup/cgroup.hpp CpuPartition).
// Every change is one write of `cpuset.cpus` per target.
#pragma once

#include <filesystem>

#include "cgroup/fs_ops.hpp"
#include "cgroup/host.hpp"
#include "cpuset/applier.hpp"

namespace runscope::cpuset {

inline constexpr const char* kCpusFile = "cpuset.cpus";
inline constexpr const char* kMemsFile = "cpuset.mems";
inline constexpr const char* kSubtreeControlFile = "cgroup.subtree_control";
inline constexpr const char* kControllersFile = "cgroup.controllers";

struct CgroupfsApplierOptions {
  // The parent folder itself: e.g. /sys/fs/cgroup/cpuset/runscope (v1) or /sys/fs/cgroup/runscope
  // (v2). Its own parent must exist; the parent is made if missing.
  std::filesystem::path parent_dir;
  cgroup::Version version = cgroup::Version::v1;
  cgroup::CgroupFsOps ops = cgroup::CgroupFsOps::kernel();
  // v2 only: the cgroup2 mount. When set, the folders from it down to the parent are made if
  // missing and each of them hands `cpuset` down; when empty, only the parent's own parent does.
  std::filesystem::path mount = {};
};

class CgroupfsApplier final : public Applier {
 public:
  explicit CgroupfsApplier(CgroupfsApplierOptions options);

  std::string name() const override;
  void prepare(const CpuSet& usable) override;
  std::optional<CpuSet> read(const Target& target) override;
  void write(const Target& target, const CpuSet& cpus) override;

  std::filesystem::path folder(const Target& target) const;

 private:
  void make_folder(const std::filesystem::path& dir);
  void enable_cpuset(const std::filesystem::path& dir);
  void prepare_v2_path();

  CgroupfsApplierOptions o_;
};

}  // namespace runscope::cpuset
