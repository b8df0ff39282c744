// What the host's cgroups look like: which hierarchies are mounted where (from mountinfo), which
// cgroup we ourselves run in (from /proc/self/cgroup), and the fingerprint facts derived from them.
// Every path is injectable so the parsing is tested against fixture texts and fake trees.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/cpuset.hpp"

namespace runscope::cgroup {

// unified: cgroup2 only. hybrid: v1 controllers plus a controller-less cgroup2 (usually at
// /sys/fs/cgroup/unified). legacy: v1 only. Like the reference design, hybrid runs the v1 logic.
enum class Mode { unified, hybrid, legacy };
enum class Version { v1, v2 };

std::string_view to_string(Mode mode);
std::string_view to_string(Version version);

struct HostLayout {
  Mode mode = Mode::legacy;
  std::filesystem::path unified_mount;  // the cgroup2 mount; empty on legacy hosts
  // Each mounted v1 controller -> its hierarchy's mount point. Co-mounted controllers
  // ("cpu,cpuacct") map to the same mount point.
  std::map<std::string, std::filesystem::path> v1_mounts;

  Version version() const { return mode == Mode::unified ? Version::v2 : Version::v1; }
};

// Throws Error(unsupported) when the text shows no cgroup mount at all. The host's own layout is
// driver::detect_layout(), which drops the mounts this process cannot see first.
HostLayout parse_mountinfo(std::string_view mountinfo);

// A process's cgroup per hierarchy, from /proc/<pid>/cgroup: every v1 controller of a line
// (and "name=systemd" style names) -> its path; the cgroup2 line under the key "" (kUnifiedKey).
using CgroupPaths = std::map<std::string, std::string>;
inline constexpr const char* kUnifiedKey = "";

CgroupPaths parse_proc_cgroup(std::string_view text);
CgroupPaths own_cgroups(const std::filesystem::path& proc_cgroup = "/proc/self/cgroup");

// mountinfo without the mounts this process cannot see: a mount is hidden by a later one on the
// same point or on an ancestor of it (a cgroup2 tree mounted over a hybrid host's /sys/fs/cgroup,
// as in a contained systemd, still lists the v1 hierarchies beneath it). No streams: the static
// runscope-shim links this.
std::string drop_shadowed_mounts(std::string_view mountinfo);

// The facts `runscope fingerprint` reports about cgroups.
struct Probe {
  Mode mode = Mode::legacy;
  Version version = Version::v1;
  std::vector<std::string> v1_controllers;  // mounted, sorted
  std::vector<std::string> v2_controllers;  // offered by the cgroup2 root, sorted
  bool cgroup_kill = false;                 // cgroup.kill exists (kernel 5.14+) on the cgroup2 tree
  CpuSet online_cpus;
};

// `sys_root` is where sysfs is mounted (its devices/system/cpu/online is read).
Probe probe(const HostLayout& layout, const CgroupPaths& own, const std::filesystem::path& sys_root = "/sys");

// The probe as fingerprint attributes, sorted by key: unique.cgroups.version (v1|v2),
// unique.cgroups.mode, cgroups.v1.controllers / cgroups.v2.controllers (comma lists),
// cgroups.kill (true|false), cpu.online (list syntax). The manager is decided elsewhere.
std::map<std::string, std::string> probe_attributes(const Probe& probe);

}  // namespace runscope::cgroup
