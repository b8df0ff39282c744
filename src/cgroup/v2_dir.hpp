// Operations on one existing cgroup2 folder, held open as a directory fd: every control file is
// opened with openat() relative to it, so a folder removed and re-made under the same name is
// never written through a stale path. Used by the cgroupfs v2 backend and by the systemd backend
// (which wraps a scope's cgroup with it).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"
#include "common/cpuset.hpp"
#include "common/fd.hpp"

namespace runscope::cgroup {

namespace v2file {
inline constexpr const char* kProcs = "cgroup.procs";
inline constexpr const char* kEvents = "cgroup.events";
inline constexpr const char* kFreeze = "cgroup.freeze";
inline constexpr const char* kKill = "cgroup.kill";
inline constexpr const char* kControllers = "cgroup.controllers";
inline constexpr const char* kSubtreeControl = "cgroup.subtree_control";
inline constexpr const char* kCpuStat = "cpu.stat";
inline constexpr const char* kCpuWeight = "cpu.weight";
inline constexpr const char* kMemoryMax = "memory.max";
inline constexpr const char* kMemoryCurrent = "memory.current";
inline constexpr const char* kMemoryPeak = "memory.peak";
inline constexpr const char* kMemoryEvents = "memory.events";
inline constexpr const char* kPidsMax = "pids.max";
inline constexpr const char* kPidsCurrent = "pids.current";
inline constexpr const char* kCpusetCpus = "cpuset.cpus";
}  // namespace v2file

class V2Dir {
 public:
  // Opens an existing cgroup2 folder; throws Error(not_found|system) naming it.
  static V2Dir open(const std::filesystem::path& path);
  V2Dir(UniqueFd dirfd, std::filesystem::path path) : fd_(std::move(dirfd)), path_(std::move(path)) {}

  int fd() const { return fd_.get(); }  // also the fd for clone3(CLONE_INTO_CGROUP)
  const std::filesystem::path& path() const { return path_; }

  bool has(std::string_view file) const;
  std::optional<std::string> read(std::string_view file) const;  // nullopt when missing or removed
  std::string read_required(std::string_view file) const;        // throws naming path/file
  void write(std::string_view file, std::string_view value) const;  // throws naming path/file/value

  // cgroup.procs of this folder only (its stat size is always 0, so it is read to EOF).
  std::vector<pid_t> pids() const;
  bool populated() const;  // cgroup.events: this folder or any below it holds a process
  bool frozen() const;

  // Writes cgroup.freeze=1 and polls cgroup.events for "frozen 1". On timeout writes 0 back and
  // throws Error(timeout).
  void freeze(const Deadline& deadline) const;
  void thaw() const;
  bool try_thaw() const noexcept;  // for cleanup paths

  void kill() const;  // cgroup.kill=1; Error(unsupported) on kernels without it

  // Polls until nothing is left (populated 0 and no pids); with `resend_sigkill` it SIGKILLs
  // whatever it still sees each round. Throws Error(timeout) naming the folder and what is left.
  void wait_empty(const Deadline& deadline, bool resend_sigkill = false) const;

  // The whole kill: pids.max=0 where present, then cgroup.kill or freeze + SIGKILL all + thaw
  // (per `method`), then wait_empty. Always thaws, also on error.
  void kill_all(const Deadline& deadline, KillMethod method = KillMethod::automatic) const;

  Stats stats() const;
  void set_cpuset(const CpuSet& cpus) const;

 private:
  UniqueFd fd_;
  std::filesystem::path path_;
};

}  // namespace runscope::cgroup
