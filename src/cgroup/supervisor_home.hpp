// The cgroupfs SupervisorHome (cgroup.hpp): one folder `<parent>/supervisors` in each hierarchy a
// cgroupfs backend uses, shared by every task's shim. Beneath the task parent, so never the
// daemon's own cgroup (v1 memory: beneath our own memory cgroup, like every task's), and never a
// task's: task cgroup names always hold a '-'. Internal to the v1 and v2 backends.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/fd.hpp"

namespace runscope::cgroup {

inline constexpr const char* kSupervisorsFolder = "supervisors";

struct SupervisorFolder {
  std::filesystem::path dir;  // <hierarchy>/<parent>/supervisors
  std::string join_file;      // what a process writes "0" to: v1 "tasks", v2 "cgroup.procs"
  std::string key;            // its hierarchy in /proc/PID/cgroup: a v1 controller, or "" for cgroup2
  std::string path;           // the folder as /proc/PID/cgroup shows it
};

// One backend's folders, shared with the TaskCgroups it makes.
class SupervisorFolders {
 public:
  // `make` makes whatever folder is missing, ready to be joined (v1 cpuset: cpus and mems set).
  SupervisorFolders(std::vector<SupervisorFolder> folders, std::function<void()> make,
                    std::filesystem::path proc_root = "/proc");

  // Each folder's join file, opened for writing (close-on-exec), in the given order. A folder
  // that is missing (never made, or removed meanwhile) is made first.
  std::vector<UniqueFd> open_join_files() const;
  // Writes `pid` into the cgroup.procs of each folder /proc/PID/cgroup does not show it in (a
  // move by another process takes the kernel's global threadgroup lock: never for nothing).
  void move_in(pid_t pid) const;
  std::string location() const;

 private:
  std::vector<UniqueFd> try_open() const;

  std::vector<SupervisorFolder> folders_;
  std::function<void()> make_;
  std::filesystem::path proc_root_;
  mutable std::mutex make_mutex_;
};

// What one TaskCgroup hands out: the shared folders, the join files opened when first asked for.
class FolderSupervisorHome final : public SupervisorHome {
 public:
  explicit FolderSupervisorHome(std::shared_ptr<const SupervisorFolders> folders) : folders_(std::move(folders)) {}
  std::vector<int> join_fds() const override;
  void move_in(pid_t shim) override { folders_->move_in(shim); }
  std::string location() const override { return folders_->location(); }

 private:
  std::shared_ptr<const SupervisorFolders> folders_;
  mutable std::vector<UniqueFd> fds_;
};

}  // namespace runscope::cgroup
