// The v1 TaskCgroup: the task's folder in each hierarchy it uses. Internal to the v1 backend.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "cgroup/fs_ops.hpp"
#include "cgroup/supervisor_home.hpp"
#include "cgroup/v2_dir.hpp"

namespace runscope::cgroup {

struct V1Hierarchy {
  std::filesystem::path mount;
  std::vector<std::string> controllers;  // co-mounted ones share a hierarchy
  std::filesystem::path dir;             // the task's folder in it
  bool owned = true;                     // false: the shared cpuset partition (never removed or killed)

  bool has(const std::string& controller) const;
};

class V1TaskCgroup final : public TaskCgroup {
 public:
  // `supervisors`: where the task's shim runs (null: no home, the launcher's own cgroup).
  V1TaskCgroup(std::vector<V1Hierarchy> hierarchies, Clock& clock, CgroupFsOps ops, std::filesystem::path proc_root,
               std::shared_ptr<const SupervisorFolders> supervisors = nullptr);
  ~V1TaskCgroup() override;

  std::vector<UniqueFd> open_join_files() const override;
  void place(pid_t pid) override;
  std::vector<pid_t> pids() const override;
  bool populated() const override { return !pids().empty(); }
  void kill_all(const Deadline& deadline, KillMethod method) override;
  void destroy(const Deadline& deadline) override;
  void set_cpuset(const CpuSet& cpus) override;
  Stats stats() const override;
  Folders folders() const override;
  std::string location() const override;
  SupervisorHome* supervisor_home() const override;
  void disown() noexcept override { destroyed_ = true; }

 private:
  const V2Dir* dir_with(const std::string& controller) const;  // owned folders only
  void kill_everything(const Deadline& deadline);  // pids.max=0, freeze, SIGKILL all, thaw, wait empty
  bool freeze(const Deadline& deadline) const;
  void thaw() const noexcept;
  void check_placed(pid_t pid) const;
  std::vector<std::size_t> placement_order() const;  // cpuset first

  std::vector<V1Hierarchy> hierarchies_;
  std::vector<V2Dir> dirs_;  // one per hierarchy, opened by fd (the file ops are version-neutral)
  Clock& clock_;
  CgroupFsOps ops_;
  std::filesystem::path proc_root_;
  std::shared_ptr<const SupervisorFolders> supervisors_;
  mutable std::unique_ptr<FolderSupervisorHome> home_;  // made when first asked for
  bool destroyed_ = false;
};

// The v1 counters from the task's folders in the cpuacct, memory and pids hierarchies (each may be
// null: its fields are then absent).
Stats v1_stats(const V2Dir* cpuacct, const V2Dir* memory, const V2Dir* pids);

}  // namespace runscope::cgroup
