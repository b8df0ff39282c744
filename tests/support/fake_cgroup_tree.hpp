// A fake cgroupfs in a fresh temp folder per test (after oomd's Fixture): hierarchies declared in
// code, and kernel-like mkdir/rmdir (CgroupFsOps) that make and drop the control files a real
// cgroupfs would show, so backends run unchanged against it.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cgroup/fs_ops.hpp"
#include "cgroup/host.hpp"

namespace runscope::testing {

class FakeCgroupTree {
 public:
  FakeCgroupTree();
  ~FakeCgroupTree();
  FakeCgroupTree(const FakeCgroupTree&) = delete;
  FakeCgroupTree& operator=(const FakeCgroupTree&) = delete;

  const std::filesystem::path& root() const { return root_; }

  // A cgroup2 hierarchy at <root>/unified offering `controllers`; returns its mount.
  std::filesystem::path add_v2(const std::vector<std::string>& controllers, bool with_kill = true);
  // A v1 hierarchy at <root>/<name> holding `controllers` (e.g. {"cpu","cpuacct"}).
  std::filesystem::path add_v1(const std::string& name, const std::vector<std::string>& controllers);
  // Makes a folder (and its ancestors) inside a hierarchy as the kernel would, with control files.
  void make_cgroup(const std::filesystem::path& path);

  // A HostLayout describing the hierarchies added (hybrid when both kinds exist).
  cgroup::HostLayout layout() const;
  cgroup::CgroupFsOps ops();

  void write(const std::filesystem::path& path, const std::string& content) const;
  std::string read(const std::filesystem::path& path) const;
  bool exists(const std::filesystem::path& path) const { return std::filesystem::exists(path); }
  // Every folder below the root other than the hierarchy mounts: what a test left behind.
  std::vector<std::filesystem::path> cgroups_below(const std::filesystem::path& mount) const;

 private:
  struct Hierarchy {
    bool v2 = false;
    bool with_kill = true;
    std::vector<std::string> controllers;
  };
  const Hierarchy* hierarchy_of(const std::filesystem::path& path, std::filesystem::path* mount) const;
  void populate(const std::filesystem::path& dir, const Hierarchy& h, bool is_root) const;

  std::filesystem::path root_;
  std::map<std::filesystem::path, Hierarchy> hierarchies_;  // mount -> kind
};

}  // namespace runscope::testing
