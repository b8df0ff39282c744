#include "wiring/cpuset_wiring.hpp"

#include <sstream>

#include "cpuset/cgroupfs_applier.hpp"
#include "cpuset/systemd_applier.hpp"
#include "common/file.hpp"

namespace runscope::wiring {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCpusetController = "cpuset";

bool offers_cpuset(const fs::path& controllers_file) {
  std::istringstream in(read_file_if_exists(controllers_file).value_or(""));
  for (std::string word; in >> word;) {
    if (word == kCpusetController) return true;
  }
  return false;
}

ApplierChoice v1_applier(const config::Config& cfg, const cgroup::HostLayout& layout,
                         const cgroup::CgroupPaths& own, cgroup::CgroupFsOps ops) {
  auto mount = layout.v1_mounts.find(kCpusetController);
  if (mount == layout.v1_mounts.end()) return {nullptr, "no cgroup v1 cpuset hierarchy is mounted"};
  auto parent = config::parent_for(cfg.cgroups, false);
  fs::path base = mount->second;
  auto mine = own.find(kCpusetController);
  if (parent.front() != '/' && mine != own.end()) base /= fs::path(mine->second).relative_path();
  return {std::make_unique<cpuset::CgroupfsApplier>(cpuset::CgroupfsApplierOptions{
              base / fs::path(parent).relative_path(), cgroup::Version::v1, std::move(ops)}),
          ""};
}

// The partitions go under the v2 backend's own parent folder, so its tasks' folders
// (<parent>/shared/<name>, <parent>/reserved/<name>) are the reconciler's.
ApplierChoice v2_applier(const config::Config& cfg, const cgroup::HostLayout& layout,
                         const cgroup::CgroupPaths& own, cgroup::CgroupFsOps ops) {
  if (layout.unified_mount.empty()) return {nullptr, "no cgroup2 hierarchy is mounted"};
  auto controllers = layout.unified_mount / cpuset::kControllersFile;
  if (!offers_cpuset(controllers)) {
    return {nullptr, "the cpuset controller is not available at " + controllers.string()};
  }
  cpuset::CgroupfsApplierOptions options;
  options.parent_dir = layout.unified_mount / driver::v2_parent(config::parent_for(cfg.cgroups, true), own);
  options.version = cgroup::Version::v2;
  options.mount = layout.unified_mount;
  options.ops = std::move(ops);
  return {std::make_unique<cpuset::CgroupfsApplier>(std::move(options)), ""};
}

}  // namespace

ApplierChoice choose_cpuset_applier(const config::Config& cfg, const driver::ManagerDecision& decision,
                                    systemd::SystemdManager* systemd_manager, const cgroup::HostLayout& layout,
                                    const cgroup::CgroupPaths& own, cgroup::CgroupFsOps ops) {
  if (decision.kind == driver::ManagerKind::systemd) {
    if (!systemd_manager) return {nullptr, "the systemd backend has no manager connection"};
    return {std::make_unique<cpuset::SystemdApplier>(*systemd_manager, config::parent_for(cfg.cgroups, true)), ""};
  }
  if (decision.version == cgroup::Version::v1) return v1_applier(cfg, layout, own, std::move(ops));
  return v2_applier(cfg, layout, own, std::move(ops));
}

}  // namespace runscope::wiring
