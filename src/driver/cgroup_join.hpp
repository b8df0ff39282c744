// Joining the cgroups another process is in: runscope-shim puts a task's journal forwarder where
// the task is (driver/journal_forwarder.hpp) without asking the daemon again. The forwarder's
// child writes "0" to each file before it drops root, as the v1 self-join does for tasks
// (driver/spawn.hpp); a migration, unlike a fork into the cgroup, is not refused by pids.max.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/fd.hpp"

namespace runscope::driver {

// The files to write "0" to so as to sit in every cgroup `pid` is in where the caller is not:
// per v1 hierarchy its folder's `tasks` (cpuset first), on cgroup2 its `cgroup.procs`; read from
// proc_root/PID/cgroup, proc_root/self/cgroup and proc_root/self/mountinfo. Throws Error naming
// the file it could not read or open, or a hierarchy that differs but is not mounted here.
std::vector<std::string> cgroup_join_paths(pid_t pid, const std::filesystem::path& proc_root = "/proc");

// A TaskCgroup that only knows how to be joined: the spawner's self-join (open_join_files) into
// `paths`; nothing else is its to do (the daemon owns the real cgroup).
class JoinOnlyCgroup final : public cgroup::TaskCgroup {
 public:
  explicit JoinOnlyCgroup(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  // A cgroup2 folder already open (CLONE_INTO_CGROUP's fd): its cgroup.procs.
  static JoinOnlyCgroup of_dirfd(int cgroup_fd);

  std::vector<UniqueFd> open_join_files() const override;
  void place(pid_t) override;  // never: a JoinOnlyCgroup always has files to join
  std::vector<pid_t> pids() const override { return {}; }
  bool populated() const override { return false; }
  void kill_all(const Deadline&, cgroup::KillMethod) override {}
  void destroy(const Deadline&) override {}
  void set_cpuset(const CpuSet&) override {}
  cgroup::Stats stats() const override { return {}; }
  std::string location() const override;

 private:
  std::vector<std::string> paths_;
};

}  // namespace runscope::driver
