// Word of every running `runscope exec`, so that one ended by SIGKILL (which nothing can catch)
// leaves a task that can be found and ended: one file per task in the registry folder
// (/run/runscope/exec, $RUNSCOPE_EXEC_DIR for tests), named after its cgroup, holding what is
// needed to reach the task again, and flock()ed for exactly as long as its runscope lives (the
// kernel drops the lock when the process dies, however it dies). A file whose lock is free
// belongs to an orphan: `runscope orphans` lists them and `--kill` ends them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.hpp"

namespace runscope::cli {

struct ExecEntry {
  std::string alloc, task, cgroup_name;
  std::string manager;  // "cgroupfs", "systemd" or "none" (--no-cgroups: a process group)
  std::string version;  // cgroupfs: "v1" or "v2"
  std::string parent;   // the parent exec used (relative parents lie beneath `own`)
  std::map<std::string, std::string> own;  // runscope's own cgroups, controller -> path
  std::string location;                    // the cgroup folder(s) or the unit, once started
  pid_t runscope_pid = 0;
  pid_t main_pid = 0;                      // 0 until started
  std::uint64_t main_start_time = 0;       // /proc/PID/stat field 22: the pid is not reused
  std::string started_at;
};

std::filesystem::path registry_dir();

// A running exec's entry; removed again by release() once its task is gone. An entry left
// behind (the task could not be removed) stays for `runscope orphans`.
class ExecRegistration {
 public:
  // Publishes the entry already locked (written under a temporary name, then linked in place).
  // Error(conflict) when the task has an entry: a live exec's, or an orphan's.
  ExecRegistration(const std::filesystem::path& dir, ExecEntry entry);
  // The same, or null when this user may not write the folder (no cgroups then either, only
  // --no-cgroups runs as a user): the run goes on without an entry.
  static std::unique_ptr<ExecRegistration> publish(const std::filesystem::path& dir, ExecEntry entry);
  ExecRegistration(const ExecRegistration&) = delete;
  ExecRegistration& operator=(const ExecRegistration&) = delete;
  ~ExecRegistration();  // closes (unlocks) but keeps the file unless released

  void started(const std::string& location, pid_t main_pid);
  void release() noexcept;  // the task and its cgroup are gone: unlink

 private:
  void write();

  std::filesystem::path path_;
  ExecEntry entry_;
  UniqueFd fd_;
  bool released_ = false;
};

// An entry whose runscope is gone; `lock` holds its flock while the caller deals with it.
struct Orphan {
  ExecEntry entry;
  std::filesystem::path file;
  UniqueFd lock;
};
std::vector<Orphan> find_orphans(const std::filesystem::path& dir);

std::string to_json_text(const ExecEntry& entry);
ExecEntry parse_exec_entry(const std::string& text);  // Error(invalid_argument)

}  // namespace runscope::cli
