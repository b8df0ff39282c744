// A task's journal lines, sent from the task's side. journald attributes a datagram to its sender
// (_PID, _UID, _GID from the socket credentials; the unit and cgroup from that pid's cgroup) and
// rate-limits per unit. So runscope-shim (root, outside the task) never talks to journald itself:
// for the journal target it starts a forwarder, `runscope-shim --journal-forwarder ALLOC TASK
// SOCKET`, through the same spawner as the task, with the task's credentials, in the task's
// cgroup(s). The forwarder reads the task's stdout on fd 0 and stderr on fd 1, sends each line
// with runscope's fields (driver/log_sink.hpp), and ends when fd 2 hangs up (the shim closes it
// once the task has ended, or dies) or both streams reach EOF.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "cgroup/cgroup.hpp"
#include "common/fd.hpp"
#include "driver/credentials.hpp"
#include "driver/process.hpp"

namespace runscope::driver {

inline constexpr const char* kForwarderFlag = "--journal-forwarder";
inline constexpr int kForwarderArgs = 5;  // runscope-shim FLAG ALLOC TASK SOCKET

// The forwarder's main (argv as above; runscope-shim dispatches on argv[1]).
int run_journal_forwarder(int argc, char** argv);

struct ForwarderSpec {
  std::string alloc, task;
  std::string socket_path;
  std::optional<Credentials> credentials;  // the task's; empty: the shim's own (root's task)
};

// The shim's handle on its forwarder.
class JournalForwarder {
 public:
  // Starts the forwarder reading `out_read`/`err_read` (the task's pipes; the caller closes its
  // copies afterwards) placed by `cg` (a JoinOnlyCgroup: the task's cgroups). Throws Error if it
  // cannot be started, with nothing left running.
  static JournalForwarder start(const ForwarderSpec& spec, int out_read, int err_read, cgroup::TaskCgroup* cg);

  // The task has ended: lets the forwarder send what is buffered and exit, up to `grace`, then
  // kills it. Idempotent.
  void finish(std::chrono::milliseconds grace);
  pid_t pid() const { return process_.pid(); }

 private:
  JournalForwarder(Process process, UniqueFd ended) : process_(std::move(process)), ended_(std::move(ended)) {}
  Process process_;
  UniqueFd ended_;  // write end; closing it tells the forwarder the task has ended
};

}  // namespace runscope::driver
