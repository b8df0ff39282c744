// What the daemon and its per-task supervisor (runscope-shim) say to each other, and the files
// they share in the task's state folder. The daemon writes launch.json and starts
//   runscope-shim TASK_DIR CONTROL_FD [CGROUP_FD]
// CONTROL_FD is one end of a SOCK_SEQPACKET socketpair, one message per packet:
//   shim -> daemon  "place PID"    a held child waits for TaskCgroup::place()
//   daemon -> shim  "ok" | "error MESSAGE"
//   shim -> daemon  "started PID" | "failed KIND[:ERRNO] MESSAGE" (KIND: the ErrorKind's number;
//                   ERRNO, when the error has one, so the daemon can tell an exec that did not fit
//                   in the task's memory limit, driver/runner.hpp)
// CGROUP_FD (v2 cgroupfs) is the task's cgroup folder, for clone3(CLONE_INTO_CGROUP).
// When the task ends the shim writes exit.json atomically, then exits. A daemon that vanishes
// (EOF) while a child is held gets the child killed: nothing runs unconfined.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "driver/credentials.hpp"
#include "driver/log_sink.hpp"
#include "driver/process.hpp"

namespace runscope::driver {

inline constexpr const char* kLaunchFile = "launch.json";
inline constexpr const char* kExitFile = "exit.json";
inline constexpr const char* kStdoutLog = "stdout.log";
inline constexpr const char* kStderrLog = "stderr.log";
inline constexpr std::size_t kMaxShimMessage = 4096;

struct ShimLaunch {
  std::string alloc, task;
  std::vector<std::string> argv, env;
  std::string cwd;
  std::optional<Credentials> credentials;
  bool journal = false;  // else size-rotated files in the task folder
  std::string journal_socket = kJournalSocket;  // journald's native socket; tests name their own
  std::uint64_t max_size = 10u << 20;
  unsigned max_files = 3;
};
std::string to_json_text(const ShimLaunch& launch);
ShimLaunch parse_shim_launch(const std::string& text);  // Error(invalid_argument) naming the field

struct ExitRecord {
  ExitStatus status;
  pid_t pid = 0;
  std::chrono::system_clock::time_point finished_at{};
};
void write_exit_record(const std::filesystem::path& task_dir, const ExitRecord& record);
// nullopt when absent; Error(invalid_argument) naming the file when unreadable.
std::optional<ExitRecord> read_exit_record(const std::filesystem::path& task_dir);

// One packet; false on EOF. Throws Error(system) on other failures.
// The "failed" message's text after the verb, and back: the error's kind, errno and message
// kept. A KIND that is no ErrorKind's number reads as system; a missing ERRNO as 0 (a shim from
// before it was sent).
std::string format_start_failure(const Error& e);
Error parse_start_failure(const std::string& text);

void send_message(int fd, const std::string& message);
std::optional<std::string> receive_message(int fd);

// Field 22 of /proc/PID/stat (start time in clock ticks since boot), nullopt when the process is
// gone. With the pid it identifies a process across pid reuse.
std::optional<std::uint64_t> process_start_time(pid_t pid, const std::filesystem::path& proc_root = "/proc");

// RFC 3339 UTC with milliseconds, and back.
std::string format_time(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point parse_time(const std::string& text);

}  // namespace runscope::driver
