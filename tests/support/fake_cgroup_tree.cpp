#include "support/fake_cgroup_tree.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace runscope::testing {

namespace fs = std::filesystem;

namespace {

using Files = std::vector<std::pair<const char*, const char*>>;

// Control files per controller, with the kernel's initial content.
const std::map<std::string, Files>& v1_files() {
  static const std::map<std::string, Files> files = {
      {"cpuset", {{"cpuset.cpus", ""}, {"cpuset.mems", ""}}},
      {"cpu", {{"cpu.shares", "1024\n"}}},
      {"cpuacct", {{"cpuacct.usage", "0\n"}, {"cpuacct.stat", "user 0\nsystem 0\n"}}},
      {"memory",
       {{"memory.limit_in_bytes", "9223372036854771712\n"},
        {"memory.usage_in_bytes", "0\n"},
        {"memory.max_usage_in_bytes", "0\n"},
        {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"}}},
      {"pids", {{"pids.max", "max\n"}, {"pids.current", "0\n"}}},
      {"freezer", {{"freezer.state", "THAWED\n"}}},
  };
  return files;
}

const std::map<std::string, Files>& v2_files() {
  static const std::map<std::string, Files> files = {
      {"cpuset", {{"cpuset.cpus", ""}, {"cpuset.mems", ""}}},
      {"cpu", {{"cpu.weight", "100\n"}}},
      {"memory",
       {{"memory.max", "max\n"}, {"memory.current", "0\n"}, {"memory.peak", "0\n"},
        {"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"}}},
      {"pids", {{"pids.max", "max\n"}, {"pids.current", "0\n"}}},
  };
  return files;
}

void put(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

}  // namespace

FakeCgroupTree::FakeCgroupTree() {
  std::string tmpl = (fs::temp_directory_path() / "runscope-fake-cgroup-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  root_ = tmpl;
}

FakeCgroupTree::~FakeCgroupTree() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

fs::path FakeCgroupTree::add_v2(const std::vector<std::string>& controllers, bool with_kill) {
  auto mount = root_ / "unified";
  fs::create_directories(mount);
  hierarchies_[mount] = Hierarchy{true, with_kill, controllers};
  populate(mount, hierarchies_[mount], true);
  return mount;
}

fs::path FakeCgroupTree::add_v1(const std::string& name, const std::vector<std::string>& controllers) {
  auto mount = root_ / name;
  fs::create_directories(mount);
  hierarchies_[mount] = Hierarchy{false, false, controllers};
  populate(mount, hierarchies_[mount], true);
  return mount;
}

void FakeCgroupTree::populate(const fs::path& dir, const Hierarchy& h, bool is_root) const {
  put(dir / "cgroup.procs", "");
  if (!h.v2) put(dir / "tasks", "");
  if (h.v2) {
    put(dir / "cgroup.controllers", join(h.controllers) + "\n");
    put(dir / "cgroup.subtree_control", "");
    put(dir / "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
    if (is_root) return;  // the root has no freeze, kill, events or limits
    put(dir / "cgroup.events", "populated 0\nfrozen 0\n");
    put(dir / "cgroup.freeze", "0\n");
    if (h.with_kill) put(dir / "cgroup.kill", "");
  }
  const auto& table = h.v2 ? v2_files() : v1_files();
  for (const auto& c : h.controllers) {
    auto it = table.find(c);
    if (it == table.end()) continue;
    for (const auto& [name, content] : it->second) put(dir / name, content);
  }
  bool has_cpuset = std::find(h.controllers.begin(), h.controllers.end(), "cpuset") != h.controllers.end();
  if (is_root && !h.v2 && has_cpuset) {
    put(dir / "cpuset.cpus", "0-3\n");  // v1 children start empty; the root owns every CPU
    put(dir / "cpuset.mems", "0\n");
  }
}

const FakeCgroupTree::Hierarchy* FakeCgroupTree::hierarchy_of(const fs::path& path, fs::path* mount) const {
  for (const auto& [m, h] : hierarchies_) {
    auto rel = path.lexically_relative(m);
    if (!rel.empty() && *rel.begin() != "..") {
      if (mount) *mount = m;
      return &h;
    }
  }
  return nullptr;
}

void FakeCgroupTree::make_cgroup(const fs::path& path) {
  fs::path mount;
  const auto* h = hierarchy_of(path, &mount);
  if (!h) throw std::runtime_error("not inside a fake hierarchy: " + path.string());
  fs::path current = mount;
  for (const auto& part : path.lexically_relative(mount)) {
    current /= part;
    if (fs::exists(current)) continue;
    fs::create_directory(current);
    populate(current, *h, false);
  }
}

cgroup::CgroupFsOps FakeCgroupTree::ops() {
  return cgroup::CgroupFsOps{
      [this](const fs::path& p) {
        const auto* h = hierarchy_of(p, nullptr);
        if (!h || !fs::exists(p.parent_path())) return ENOENT;
        if (fs::exists(p)) return EEXIST;
        fs::create_directory(p);
        populate(p, *h, false);
        return 0;
      },
      [this](const fs::path& p) {
        if (!fs::exists(p)) return ENOENT;
        if (!read(p / "cgroup.procs").empty()) return EBUSY;
        for (const auto& entry : fs::directory_iterator(p)) {
          if (entry.is_directory()) return EBUSY;
        }
        fs::remove_all(p);
        return 0;
      },
  };
}

cgroup::HostLayout FakeCgroupTree::layout() const {
  cgroup::HostLayout layout;
  for (const auto& [mount, h] : hierarchies_) {
    if (h.v2) {
      layout.unified_mount = mount;
      continue;
    }
    for (const auto& c : h.controllers) layout.v1_mounts[c] = mount;
  }
  if (layout.v1_mounts.empty()) {
    layout.mode = cgroup::Mode::unified;
  } else {
    layout.mode = layout.unified_mount.empty() ? cgroup::Mode::legacy : cgroup::Mode::hybrid;
  }
  return layout;
}

void FakeCgroupTree::write(const fs::path& path, const std::string& content) const { put(path, content); }

std::string FakeCgroupTree::read(const fs::path& path) const {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> FakeCgroupTree::cgroups_below(const fs::path& mount) const {
  std::vector<fs::path> out;
  for (const auto& entry : fs::recursive_directory_iterator(mount)) {
    if (entry.is_directory()) out.push_back(entry.path());
  }
  return out;
}

}  // namespace runscope::testing
