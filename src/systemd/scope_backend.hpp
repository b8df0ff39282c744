// cgroup::Backend for hosts where systemd owns the cgroup tree: every task gets a transient
// scope "<alloc>-<task>.scope" under runscope's slice, made through SystemdManager (never by
// mkdir), and is killed through the scope's own cgroup files before the unit is stopped.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "cgroup/fs_ops.hpp"
#include "systemd/manager.hpp"
#include "systemd/supervisor_home.hpp"

namespace runscope::systemd {

struct SystemdBackendOptions {
  std::string parent_slice = "runscope.slice";           // config cgroups.parent
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";  // where systemd's cgroup2 tree is mounted
  std::filesystem::path proc_root = "/proc";
  std::chrono::nanoseconds destroy_timeout = std::chrono::seconds(10);  // used by destructors
  // true: destroy() returns once systemd's stop job is done (the unit inactive, its cgroup gone).
  // false (`runscope exec`): once the scope is empty, destroy() sends StopUnit and returns; systemd
  // removes the empty scope a moment later. A later start of the same name that finds it still
  // there stops it first (see ScopeCgroup::make_room_for_stale_unit).
  bool await_stop = true;
  Clock* clock = nullptr;  // null: the steady clock
  // What keeps the supervisors' scope while no shim runs (argv; see systemd/supervisor_home.hpp).
  // Empty: no supervisors' home, shims stay where their launcher runs (`runscope exec`, tests).
  std::vector<std::string> supervisor_anchor;
  cgroup::CgroupFsOps ops = cgroup::CgroupFsOps::kernel();  // mkdir/rmdir of the shims' cgroups
};

// One of our scopes found again (after a daemon restart).
struct FoundScope {
  std::string unit;
  std::string slice;
  std::string active_state;
  std::string control_group;
};

// The cgroup2 path of `pid` as its /proc/PID/cgroup "0::" line shows it.
std::string unified_cgroup_of(const std::filesystem::path& proc_root, pid_t pid);

class SystemdBackend final : public cgroup::Backend {
 public:
  SystemdBackend(SystemdManager& manager, SystemdBackendOptions options = {});
  // The same, owning its manager (see systemd/factory.hpp).
  SystemdBackend(std::unique_ptr<SystemdManager> manager, SystemdBackendOptions options = {});

  std::string manager_name() const override { return "systemd"; }
  // Validates and prepares; the scope itself is made by place(), as systemd cannot make an empty one.
  std::unique_ptr<cgroup::TaskCgroup> create(const TaskId& id, const cgroup::Limits& limits) override;

  // Restart recovery: the running scope "<cgroup_name>.scope" in one of runscope's slices, owned
  // again (destroy kills its processes and stops the unit). Error(not_found) when it is not
  // loaded or has ended; Error(conflict) when the name belongs to a scope outside our slices.
  std::unique_ptr<cgroup::TaskCgroup> adopt(const std::string& cgroup_name, cgroup::CpuPartition partition) override;
  // Every loaded scope in runscope's slices (the partition read from its slice): every scope
  // there counts as ours, as every folder under the parent does for the cgroupfs backends.
  std::vector<std::pair<std::string, cgroup::CpuPartition>> existing() const override;

  // The shims' cgroups in the supervisors' scope that serve none of `running` (cgroup names).
  void remove_stray_supervisors(const std::set<std::string>& running) override;
  SupervisorsScope* supervisors() { return supervisors_.get(); }  // null without an anchor

  // Every loaded scope in runscope's slices, whatever its state.
  std::vector<FoundScope> find_scopes() const;

  // Internals shared with the scopes this backend makes.
  SystemdManager& manager() { return manager_; }
  const SystemdBackendOptions& options() const { return options_; }
  Clock& clock() { return clock_; }
  // PIDFDs support is learned from the first start: until then one start at a time tries it, so
  // a burst of first starts does not pay a refused round trip each.
  enum class PidfdSupport { unknown, supported, refused };
  PidfdSupport pidfd_support() const { return pidfd_support_.load(); }
  void note_pidfd_support(PidfdSupport s) { pidfd_support_.store(s); }
  std::mutex& pidfd_probe_mutex() { return pidfd_probe_mutex_; }
  bool pidfds_refused() const { return pidfd_support() == PidfdSupport::refused; }
  std::vector<std::string> our_slices() const;
  std::string slice_property(const std::string& unit) const;  // the unit's Slice; not_found if none

 private:
  std::unique_ptr<SystemdManager> owned_manager_;  // null when borrowed
  SystemdManager& manager_;
  SystemdBackendOptions options_;
  Clock& clock_;
  // Learned from systemd's first answer (versions before 253 refuse PIDFDs).
  std::atomic<PidfdSupport> pidfd_support_{PidfdSupport::unknown};
  std::mutex pidfd_probe_mutex_;
  std::unique_ptr<SupervisorsScope> supervisors_;
};

}  // namespace runscope::systemd
