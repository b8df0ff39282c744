// Starts the kernel's wait for cgroup migrations early, beside other work.
//
// Moving a process into a cgroup write-locks the kernel's global cgroup_threadgroup_rwsem, and the
// first writer after an idle moment (some 20 ms without one) waits for an RCU grace period
// (the lock's rcu_sync): 5-23 ms here, against microseconds for the writers within the grace
// period that follow. On the systemd path that writer is PID 1 attaching exec's child to its new
// scope, with cgroup_mutex held, so the whole wait lies on exec's start. A primer takes it on a
// thread of its own at once, by moving that thread into the cgroup it is already in (its own tid
// to its own cgroup.threads: the kernel skips the lock only for "0"), so systemd's attach a few
// milliseconds later finds the grace period passed or under way. Hosts whose cgroup2 is mounted
// with favordynmods never wait, and the write then costs some 60 us on a thread. docs/driver.md,
// "Fifth pass", has the measurements.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <thread>

namespace runscope::cgroup {

struct MigrationPrimerPaths {
  std::filesystem::path unified_mount;  // the cgroup2 mount
  std::filesystem::path thread_cgroup = "/proc/thread-self/cgroup";  // read on the primer's thread
};

class MigrationPrimer {
 public:
  // Best effort: a primer that cannot read its cgroup or write (a read-only cgroupfs, a threaded
  // subtree, no permission) has only failed to save time. Its thread never logs (the CLI's logger
  // is single-threaded); finish() tells the outcome.
  explicit MigrationPrimer(MigrationPrimerPaths paths);
  MigrationPrimer(const MigrationPrimer&) = delete;
  MigrationPrimer& operator=(const MigrationPrimer&) = delete;
  ~MigrationPrimer();  // joins: the write ends with the grace period

  // Waits for the write; 0 when it was made, else the errno of the step that failed.
  int finish();

 private:
  int result_ = 0;
  std::thread thread_;  // last: started once result_ exists
};

// The primer's whole work, on the calling thread: reads the thread's cgroup2 path from
// `paths.thread_cgroup` and writes `tid` to that cgroup's cgroup.threads under the mount. Returns
// 0 or the errno of the step that failed (ENOENT also for a file without a "0::" line).
int prime_migration_lock(const MigrationPrimerPaths& paths, pid_t tid);

}  // namespace runscope::cgroup
