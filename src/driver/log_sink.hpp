// Where a task's stdout/stderr go: size-rotated files (name, name.1, ... name.N-1), written by
// runscope-shim, or the journal, one entry per line tagged RUNSCOPE_ALLOC / RUNSCOPE_TASK, sent
// by the task's journal forwarder (driver/journal_forwarder.hpp) as the task's own user.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/fd.hpp"

namespace runscope::driver {

inline constexpr const char* kJournalSocket = "/run/systemd/journal/socket";
// SYSLOG_IDENTIFIER of a task's lines: this prefix and the task's name ("runscope/web"), so no
// task line can carry the identifier of a system program ("sshd") whatever the task is called.
inline constexpr const char* kJournalIdentifierPrefix = "runscope/";

class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void write(std::string_view data) = 0;  // best effort: logging never kills a task
  virtual void flush() {}
};

// Rotates before a write would take the file past max_size; keeps max_files files in all.
// Files are 0600: root's, and their owner's only through runscoped.
class RotatingFile final : public LogSink {
 public:
  RotatingFile(std::filesystem::path path, std::uint64_t max_size, unsigned max_files);
  void write(std::string_view data) override;

 private:
  void rotate();
  void open();

  std::filesystem::path path_;
  std::uint64_t max_size_;
  unsigned max_files_;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
};

// Lines to the journal (native protocol); a partial line waits for its end or for flush().
class JournalLines final : public LogSink {
 public:
  // `socket_path`: journald's native socket; tests pass their own.
  JournalLines(std::string alloc, std::string task, int priority, std::string socket_path = kJournalSocket);
  void write(std::string_view data) override;
  void flush() override;
  // Waits, up to `limit`, until journald has taken every datagram sent (SIOCOUTQ is 0): journald
  // reads a sender's cgroup (its unit) from /proc when it takes the datagram, so a sender that
  // exits first leaves lines with no unit.
  void wait_sent(std::chrono::milliseconds limit) const;

 private:
  void send(std::string_view line);

  std::string alloc_, task_;
  int priority_;
  std::string partial_;
  std::string socket_path_;
  UniqueFd socket_;
};

// The journal fields that select one task's lines: its names and the uid it ran as, which
// journald records from the sender's credentials (a task may send any field it likes, but never
// another uid). `runscope logs` passes them to journalctl.
std::map<std::string, std::string> journal_match(const std::string& alloc, const std::string& task, unsigned uid);

// One of a task's output pipes and where its bytes go.
struct LogStream {
  UniqueFd fd;
  std::unique_ptr<LogSink> sink;
};

// Pumps both streams into their sinks until `ended_fd` polls readable or hung up (the task's
// pidfd, or a pipe closed when the task has ended) or both reach EOF, then takes what is already
// buffered (bounded: children still holding the pipes are not waited for) and flushes.
void pump_until(int ended_fd, LogStream& out, LogStream& err);

}  // namespace runscope::driver
