// The supervisors' home on the systemd path (cgroup::SupervisorHome): every task's shim in a
// cgroup of its own, named after its task, below ONE long-lived delegated scope
// "<stem>\x2dsupervisors.scope" in "<stem>-supervisors.slice". Never in the daemon's unit (whose
// stop, `systemctl kill` or OOM kill would take it along) nor in the task's scope (whose kill
// would). The forked shim joins its cgroup itself before it execs, as on cgroupfs, so a start
// costs systemd nothing beyond the task's own scope: a scope per shim, even one made in the same
// StartTransientUnit as the task's, halves the starts systemd makes (docs/daemon.md, "Where the
// supervisors live"). systemd ends an empty scope, so an anchor process (`runscope-shim
// --anchor`, outside every shim's cgroup) keeps it while no shim runs; it outlives the daemon and
// is reused by the next one. A shim's cgroup goes when its task is destroyed, and at recovery when
// no running task owns it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"
#include "common/fd.hpp"

namespace runscope::systemd {

class SystemdBackend;

class SupervisorsScope {
 public:
  // `anchor`: the command that keeps the scope (argv, exec'd in a session of its own).
  SupervisorsScope(SystemdBackend& backend, std::vector<std::string> anchor);

  // The scope's cgroup folder. A scope that is not running is made, with a new anchor. Throws.
  std::filesystem::path folder();
  // The same, never made: "" when the scope is not running.
  std::filesystem::path current_folder();
  // Where a shim's cgroup named `name` is, for humans.
  std::string location(const std::string& name) const { return slice_ + "/" + unit_ + "/" + name; }
  // Kills what is left in, and removes, every shim's cgroup not named in `running`; with no task
  // running at all, stops the scope and its anchor too. Nothing when the scope is not running.
  void remove_strays(const std::set<std::string>& running);

  SystemdBackend& backend() { return backend_; }

 private:
  std::filesystem::path existing_folder();  // "" when the scope is not running
  void stop();
  std::filesystem::path make();
  pid_t spawn_anchor() const;

  SystemdBackend& backend_;
  std::vector<std::string> anchor_;
  std::string unit_;
  std::string slice_;
  std::mutex mutex_;
  std::filesystem::path folder_;  // known once found or made; checked again before each use
};

// One task's shim cgroup: <scope folder>/<task cgroup name>.
class ShimCgroup final : public cgroup::SupervisorHome {
 public:
  ShimCgroup(SupervisorsScope& scope, std::string name) : scope_(scope), name_(std::move(name)) {}

  // Makes the cgroup (and the scope, if it is not running) and opens its cgroup.procs.
  std::vector<int> join_fds() const override;
  void move_in(pid_t shim) override;
  std::string location() const override { return scope_.location(name_); }

  // The task is over: kills whatever is left in the cgroup (a hung shim) and removes it. Best
  // effort, never throws.
  void remove(const Deadline& deadline) noexcept;

 private:
  std::filesystem::path make() const;

  SupervisorsScope& scope_;
  std::string name_;
  mutable UniqueFd procs_;
};

}  // namespace runscope::systemd
