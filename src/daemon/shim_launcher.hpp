// Starting a task's supervisor (runscope-shim) from the daemon: outside the task's cgroup, in its
// own session, with the control channel of driver/shim_protocol.hpp. spawn() is the fork/exec
// only and returns at once: the manager drives the handshake (place, started) from its reactor.
// The seam the manager's tests replace.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"

namespace runscope::daemon {

struct SpawnedShim {
  pid_t pid = 0;
  UniqueFd pidfd;    // readable once the shim has exited
  UniqueFd control;  // our end of the control channel (SOCK_SEQPACKET, close-on-exec)
};

struct LaunchedShim {
  pid_t pid = 0;
  UniqueFd pidfd;                // readable once the shim has exited
  std::uint64_t start_time = 0;  // /proc/PID/stat field 22, to know it again after a restart
  pid_t task_pid = 0;
};

class ShimLauncher {
 public:
  virtual ~ShimLauncher() = default;
  // Forks and execs the shim for the task whose launch.json is in `task_dir` (`cg`: where the task
  // will run; its clone_into_fd() is handed over when it has one). Throws when it cannot.
  virtual SpawnedShim spawn(const std::filesystem::path& task_dir, const cgroup::TaskCgroup& cg) = 0;

  // spawn() and the whole handshake, waiting: answers place() requests with `cg` and returns once
  // the task has been exec'd. Throws the shim's own error (kind kept), with the shim reaped and any
  // held child killed by it. For tools and tests; the daemon drives the handshake from events.
  LaunchedShim launch(const std::filesystem::path& task_dir, cgroup::TaskCgroup& cg, const Deadline& deadline);
};

// What the shim said on its control channel.
struct ShimMessage {
  enum class Kind { place, started, failed, other } kind = Kind::other;
  pid_t pid = 0;      // place, started
  Error error{ErrorKind::system, ""};  // failed (its kind kept), other (what it said)
};
ShimMessage parse_shim_message(const std::string& text);

// SIGKILLs a shim of ours and reaps it (a start that failed after it was spawned); how it ended
// (zeroed when there was no shim or it was reaped already).
siginfo_t kill_and_reap(const UniqueFd& pidfd) noexcept;

// Why a shim's channel closed before it started the task, from how it ended (`reaped`): a shim
// that could not join its supervisor home (`home`, may be null) is named so.
Error shim_gone(const siginfo_t& reaped, const cgroup::SupervisorHome* home);

class ExecShimLauncher final : public ShimLauncher {
 public:
  // `task_nofile`: the RLIMIT_NOFILE the shim (and so the task) starts with, when the daemon
  // raised its own (raise_fd_limit); unset: inherited as is.
  explicit ExecShimLauncher(std::filesystem::path binary, std::optional<rlimit> task_nofile = std::nullopt)
      : binary_(std::move(binary)), task_nofile_(task_nofile) {}
  SpawnedShim spawn(const std::filesystem::path& task_dir, const cgroup::TaskCgroup& cg) override;

 private:
  std::filesystem::path binary_;
  std::optional<rlimit> task_nofile_;
};

// The daemon holds fds per running task (the shim's pidfd, a v1 task's folder in each hierarchy),
// so it raises its soft RLIMIT_NOFILE to the hard limit (systemd's default soft limit is 1024,
// the hard one 524288). Returns the limit it had, for the tasks; nullopt if nothing changed.
std::optional<rlimit> raise_fd_limit() noexcept;

// The shim's path next to the running binary, else the install location.
std::filesystem::path default_shim_path();

}  // namespace runscope::daemon
