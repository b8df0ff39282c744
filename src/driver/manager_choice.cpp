#include "driver/manager_choice.hpp"

#include <vector>

#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::driver {
namespace {

std::string mode_name(const cgroup::HostLayout& layout) { return std::string(cgroup::to_string(layout.mode)); }

}  // namespace

std::string_view to_string(ManagerKind kind) { return kind == ManagerKind::systemd ? "systemd" : "cgroupfs"; }

cgroup::HostLayout detect_layout(const std::filesystem::path& mountinfo) {
  return cgroup::parse_mountinfo(cgroup::drop_shadowed_mounts(read_file(mountinfo)));
}

ManagerDecision choose_manager(const ManagerQuery& query, const cgroup::HostLayout& layout,
                               const std::function<bool()>& systemd_running) {
  const bool unified = layout.mode == cgroup::Mode::unified;
  if (query.force_v2) {
    if (query.choice == config::ManagerChoice::systemd) {
      throw Error(ErrorKind::invalid_argument, "the forced cgroup v2 cgroupfs backend cannot be combined with "
                                               "manager 'systemd'");
    }
    if (layout.unified_mount.empty()) {
      throw Error(ErrorKind::unsupported, "cannot force the cgroup v2 backend: this " + mode_name(layout) +
                                              " host has no cgroup2 mount");
    }
    return {ManagerKind::cgroupfs, cgroup::Version::v2};
  }
  switch (query.choice) {
    case config::ManagerChoice::cgroupfs:
      return {ManagerKind::cgroupfs, layout.version()};
    case config::ManagerChoice::systemd:
      if (!unified) {
        throw Error(ErrorKind::unsupported, "manager 'systemd' needs a unified (cgroup v2) host; this host is " +
                                                mode_name(layout) + ", use manager 'cgroupfs' or 'auto'");
      }
      if (!systemd_running()) {
        throw Error(ErrorKind::unsupported, "manager 'systemd' was asked for, but systemd is not running on this host");
      }
      return {ManagerKind::systemd, cgroup::Version::v2};
    case config::ManagerChoice::automatic:
      break;
  }
  if (unified && systemd_running()) return {ManagerKind::systemd, cgroup::Version::v2};
  return {ManagerKind::cgroupfs, layout.version()};
}

std::filesystem::path v2_parent(const std::string& parent, const cgroup::CgroupPaths& own) {
  if (!parent.empty() && parent.front() == '/') return std::filesystem::path(parent).relative_path();
  auto it = own.find(cgroup::kUnifiedKey);
  std::filesystem::path base = it != own.end() ? std::filesystem::path(it->second).relative_path() : "";
  return base / parent;
}

}  // namespace runscope::driver
