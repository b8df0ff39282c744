#include "cgroup/host.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <sstream>

#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;

constexpr const char* kControllersFile = "cgroup.controllers";
constexpr const char* kKillFile = "cgroup.kill";
constexpr const char* kOnlineCpus = "devices/system/cpu/online";

// v1 super options that are controllers (the rest are flags like rw, noprefix, name=...).
constexpr std::array<std::string_view, 14> kV1Controllers = {
    "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer",
    "net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"};

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// mountinfo escapes space, tab, newline and backslash as \NNN (octal).
std::string unescape_octal(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      auto digits = s.substr(i + 1, 3);
      if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out += static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0'));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

struct MountLine {
  std::string mount_point;
  std::string fstype;
  std::string super_options;
};

// Fields: id parent major:minor root mount_point options [optional...] - fstype source super.
bool parse_mount_line(std::string_view line, MountLine& out) {
  auto fields = split(line, ' ');
  auto dash = std::find(fields.begin(), fields.end(), "-");
  if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4) return false;
  out.mount_point = unescape_octal(fields[4]);
  out.fstype = *(dash + 1);
  out.super_options = *(dash + 3);
  return true;
}

bool is_v1_controller(std::string_view name) {
  return std::find(kV1Controllers.begin(), kV1Controllers.end(), name) != kV1Controllers.end();
}

std::vector<std::string> sorted_words(std::string_view text) {
  std::vector<std::string> words;
  std::istringstream in{std::string(text)};
  for (std::string w; in >> w;) words.push_back(w);
  std::sort(words.begin(), words.end());
  return words;
}

// cgroup.kill only exists below the root, so look at our own cgroup2 folder, then at any child of
// the root; with neither to look at, fall back to the kernel version that added it (5.14).
bool detect_cgroup_kill(const fs::path& unified, const CgroupPaths& own) {
  std::error_code ec;
  auto mine = own.find(kUnifiedKey);
  if (mine != own.end() && mine->second != "/") {
    if (fs::exists(unified / fs::path(mine->second).relative_path() / kKillFile, ec)) return true;
  }
  for (const auto& entry : fs::directory_iterator(unified, ec)) {
    if (entry.is_directory(ec)) return fs::exists(entry.path() / kKillFile, ec);
  }
  utsname u{};
  if (::uname(&u) != 0) return false;
  unsigned major = 0, minor = 0;
  if (std::sscanf(u.release, "%u.%u", &major, &minor) != 2) return false;
  return major > 5 || (major == 5 && minor >= 14);
}

}  // namespace

std::string_view to_string(Mode mode) {
  switch (mode) {
    case Mode::unified: return "unified";
    case Mode::hybrid: return "hybrid";
    case Mode::legacy: return "legacy";
  }
  return "unknown";
}

std::string_view to_string(Version version) { return version == Version::v2 ? "v2" : "v1"; }

HostLayout parse_mountinfo(std::string_view mountinfo) {
  HostLayout layout;
  for (const auto& line : split(mountinfo, '\n')) {
    MountLine m;
    if (!parse_mount_line(line, m)) continue;
    if (m.fstype == "cgroup2") {
      if (layout.unified_mount.empty()) layout.unified_mount = m.mount_point;
    } else if (m.fstype == "cgroup") {
      for (const auto& option : split(m.super_options, ',')) {
        if (is_v1_controller(option)) layout.v1_mounts.emplace(option, m.mount_point);
      }
    }
  }
  if (layout.unified_mount.empty() && layout.v1_mounts.empty()) {
    throw Error(ErrorKind::unsupported, "no cgroup or cgroup2 filesystem is mounted (per mountinfo)");
  }
  if (layout.v1_mounts.empty()) {
    layout.mode = Mode::unified;
  } else {
    layout.mode = layout.unified_mount.empty() ? Mode::legacy : Mode::hybrid;
  }
  return layout;
}

CgroupPaths parse_proc_cgroup(std::string_view text) {
  CgroupPaths paths;
  for (const auto& line : split(text, '\n')) {
    // hierarchy-id:controller-list:path (the path may itself contain ':').
    auto first = line.find(':');
    auto second = first == std::string::npos ? std::string::npos : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    auto controllers = line.substr(first + 1, second - first - 1);
    auto path = line.substr(second + 1);
    if (controllers.empty()) {
      paths[kUnifiedKey] = path;
      continue;
    }
    for (const auto& c : split(controllers, ',')) paths[c] = path;
  }
  return paths;
}

CgroupPaths own_cgroups(const fs::path& proc_cgroup) { return parse_proc_cgroup(read_file(proc_cgroup)); }

// No streams here: runscope-shim links this, and an istringstream would bring the whole locale
// machinery into its static binary (about 470 KiB of text).
std::string drop_shadowed_mounts(std::string_view mountinfo) {
  constexpr std::size_t kMountPointField = 4;  // mountinfo: id, parent, dev, root, MOUNT POINT, ...
  const std::vector<std::string> lines = split(mountinfo, '\n');
  std::vector<std::string> points;
  for (const auto& line : lines) {
    auto fields = split(line, ' ');
    points.push_back(fields.size() > kMountPointField ? fields[kMountPointField] : "");
  }
  auto hides = [](const std::string& later, const std::string& earlier) {
    if (later.empty() || later == "/") return false;  // never let a late "/" entry hide everything
    return earlier == later || earlier.starts_with(later + "/");
  };
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    bool hidden = false;
    for (std::size_t j = i + 1; j < lines.size() && !hidden; ++j) hidden = hides(points[j], points[i]);
    if (!hidden) out += lines[i] + "\n";
  }
  return out;
}

Probe probe(const HostLayout& layout, const CgroupPaths& own, const fs::path& sys_root) {
  Probe p;
  p.mode = layout.mode;
  p.version = layout.version();
  for (const auto& [controller, mount] : layout.v1_mounts) p.v1_controllers.push_back(controller);
  if (!layout.unified_mount.empty()) {
    p.v2_controllers = sorted_words(read_file_if_exists(layout.unified_mount / kControllersFile).value_or(""));
    p.cgroup_kill = detect_cgroup_kill(layout.unified_mount, own);
  }
  p.online_cpus = CpuSet::parse(trim(read_file(sys_root / kOnlineCpus)));
  return p;
}

std::map<std::string, std::string> probe_attributes(const Probe& p) {
  auto join = [](const std::vector<std::string>& list) {
    std::string out;
    for (const auto& item : list) out += (out.empty() ? "" : ",") + item;
    return out;
  };
  return {
      {"unique.cgroups.version", std::string(to_string(p.version))},
      {"unique.cgroups.mode", std::string(to_string(p.mode))},
      {"cgroups.v1.controllers", join(p.v1_controllers)},
      {"cgroups.v2.controllers", join(p.v2_controllers)},
      {"cgroups.kill", p.cgroup_kill ? "true" : "false"},
      {"cpu.online", p.online_cpus.to_string()},
  };
}

}  // namespace runscope::cgroup
