// The contract between the task runner (driver/) and whatever confines a task: the cgroupfs
// backends here (v1/hybrid and v2) and the systemd scope backend (systemd/).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/cpuset.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"

namespace runscope::cgroup {

// Where a task's CPUs come from. `none`: its own cpuset (Limits::cpuset) or the parent's.
// With the cpuset reconciler: `shared` tasks all follow one partition (v1: they join the single
// cgroup <parent>/shared in the cpuset hierarchy; v2: <parent>/shared/<name>; systemd: the
// runscope-shared.slice), `reserved` tasks get <parent>/reserved/<name> (systemd:
// runscope-reserved.slice) with Limits::cpuset as their exclusive cores. The backend creates a
// missing partition folder (copying cpus/mems from its parent on v1); the reconciler owns its cpus.
enum class CpuPartition { none, shared, reserved };

struct Limits {
  CpuPartition partition = CpuPartition::none;
  std::optional<std::uint64_t> memory_max;  // bytes
  std::optional<std::uint64_t> cpu_weight;  // kMinCpuWeight..kMaxCpuWeight, v2 scale; v1: cpu.shares
  std::optional<std::uint64_t> pids_max;
  std::optional<CpuSet> cpuset;
  bool empty() const { return !memory_max && !cpu_weight && !pids_max && !cpuset; }
};

struct Stats {
  std::chrono::microseconds cpu_user{0};
  std::chrono::microseconds cpu_system{0};
  std::optional<std::uint64_t> memory_current;
  std::optional<std::uint64_t> memory_peak;
  std::optional<std::uint64_t> pids_current;
  std::uint64_t oom_kills = 0;
};

// A task's cgroup folders by path, so its counters and processes can be read at any time (see
// cgroup/folders.hpp) without its TaskCgroup, which may be closed while the task runs, and without
// a bus round trip.
struct Folders {
  std::filesystem::path unified;                    // v2 and systemd: the task's folder
  std::map<std::string, std::filesystem::path> v1;  // v1: each controller -> the task's folder there
  bool empty() const { return unified.empty() && v1.empty(); }
};

enum class KillMethod {
  automatic,    // cgroup.kill where the kernel has it, else freeze-kill-thaw
  freeze,       // always freeze, SIGKILL every pid, thaw
  cgroup_kill,  // v2 cgroup.kill only; Error(unsupported) where missing
};

// Where one task's supervisor (runscope-shim) runs: never in the daemon's own cgroup, which a
// `systemctl stop`/`kill` of the daemon's unit, KillMode=control-group or an OOM kill inside it
// would take along (and the task's exit status with it), and never in the task's, whose kill would.
// cgroupfs: one shared folder `<parent>/supervisors` in each hierarchy (task cgroup names always
// hold a '-', so no task can be called that); systemd: a cgroup per shim below one delegated
// supervisors' scope. Handed out by TaskCgroup::supervisor_home().
class SupervisorHome {
 public:
  virtual ~SupervisorHome() = default;

  // Files the freshly forked shim writes "0" to before it execs, so it runs in its home from its
  // first instruction (v1: each hierarchy's `tasks`; v2: `cgroup.procs`). Borrowed: open as long
  // as this home lives. Makes the home when needed; throws when it can't.
  virtual std::vector<int> join_fds() const = 0;

  // A shim that already runs (reattached after a restart; an older runscoped left it in its own
  // cgroup) is moved in, unless it is home already. Throws on failure; the shim keeps running.
  virtual void move_in(pid_t shim) = 0;

  virtual std::string location() const = 0;
};

// One task's confinement. Owning: the destructor kills what is left and removes the cgroup(s),
// best effort and without throwing, so no error path leaves anything behind.
class TaskCgroup {
 public:
  virtual ~TaskCgroup() = default;

  // v2 cgroupfs: a directory fd for clone3(CLONE_INTO_CGROUP), so the child starts inside.
  // Elsewhere -1: the runner forks the child held on a pipe and calls place() before releasing it.
  virtual int clone_into_fd() const { return -1; }

  // v1 cgroupfs: each hierarchy's `tasks` file, opened for writing (close-on-exec), in placement
  // order. The child, still single-threaded and before exec, writes "0" to each: moving itself
  // spares the kernel's global threadgroup lock, whose writer waits an RCU grace period (the
  // largest part of a v1 start under load). Empty: the runner holds the child and calls place().
  virtual std::vector<UniqueFd> open_join_files() const { return {}; }

  // Moves a held (not yet exec'd) child in; returns only once the kernel lists it in every
  // hierarchy this cgroup spans. Throws on failure; the caller then kills the child.
  virtual void place(pid_t pid) = 0;

  // place() in two halves, for a backend whose placing waits for someone else (systemd's job):
  // begin_place() only sends the request and returns; `sent` is called once, from any thread
  // (keep it short), when the wait is over; then the caller calls finish_place() (short, may block)
  // on a thread of its own. If `sent` carries an error nothing was placed and the caller falls
  // back to place(). Backends that place at once don't do this (places_asynchronously() false).
  virtual bool places_asynchronously() const { return false; }
  virtual void begin_place(pid_t pid, std::function<void(std::exception_ptr)> sent) {
    (void)pid;
    sent(nullptr);
  }
  virtual void finish_place(pid_t pid) { place(pid); }

  virtual std::vector<pid_t> pids() const = 0;  // every process, all hierarchies, deduplicated
  virtual bool populated() const = 0;

  // SIGKILL everything with no survivors (pids.max=0 first where present), then wait until
  // empty. Always thaws, also on error. Throws Error(timeout) if not empty by the deadline.
  virtual void kill_all(const Deadline& deadline, KillMethod method = KillMethod::automatic) = 0;

  // kill_all, then remove the cgroup(s); idempotent. After it, the destructor does nothing.
  virtual void destroy(const Deadline& deadline) = 0;

  // Live change of the cpuset (cpuset reconciler). Never called with an empty set.
  virtual void set_cpuset(const CpuSet& cpus) = 0;

  virtual Stats stats() const = 0;

  // Where its counters and processes are (empty while a systemd scope is not placed yet).
  virtual Folders folders() const { return {}; }

  // For humans and `inspect`: the cgroup path(s) or the unit name.
  virtual std::string location() const = 0;

  // Where this task's supervisor runs (see SupervisorHome). Null: wherever the launcher runs
  // (backends that have no home to give, and test fakes).
  virtual SupervisorHome* supervisor_home() const { return nullptr; }

  // Lets go without touching anything: the destructor then leaves the cgroup and its processes
  // (the daemon stopping with tasks left running, to adopt them again after its restart).
  // Backends that cannot do this keep their destructor's cleanup.
  virtual void disown() noexcept {}
};

// Makes TaskCgroups for one manager ("cgroupfs" or "systemd").
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string manager_name() const = 0;
  // Creates (or, for systemd, prepares) the task's cgroup with its limits applied. A limit whose
  // controller is missing throws Error(unsupported) naming the controller, leaving nothing made.
  virtual std::unique_ptr<TaskCgroup> create(const TaskId& id, const Limits& limits) = 0;

  // Restart recovery (the daemon): the cgroup an earlier run made under `cgroup_name`
  // (TaskId::cgroup_name()), owned again; Error(not_found) when it is gone. Identity stays with
  // the caller's state: the name is only where to look.
  virtual std::unique_ptr<TaskCgroup> adopt(const std::string& cgroup_name, CpuPartition partition) {
    (void)cgroup_name;
    (void)partition;
    throw Error(ErrorKind::unsupported, manager_name() + ": adopting an existing cgroup is not supported");
  }
  // The task cgroups that exist under the parent (their folder names, partitions included), so
  // the daemon can remove the ones no task owns. Empty where the backend can't tell.
  virtual std::vector<std::pair<std::string, CpuPartition>> existing() const { return {}; }

  // Restart recovery, after every task was recovered: removes the supervisor homes that serve
  // none of the tasks still running (their cgroup names in `running`). systemd: stops such
  // shims' cgroups (killing what is left in them). cgroupfs: nothing (one shared folder).
  virtual void remove_stray_supervisors(const std::set<std::string>& running) { (void)running; }
};

}  // namespace runscope::cgroup
