// Where the shim pumps a task's stdout/stderr: size-rotated files (name, name.1, ... name.N-1)
// or the journal, one entry per line tagged RUNSCOPE_ALLOC / RUNSCOPE_TASK.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/fd.hpp"

namespace runscope::driver {

class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void write(std::string_view data) = 0;  // best effort: logging never kills a task
  virtual void flush() {}
};

// Rotates before a write would take the file past max_size; keeps max_files files in all.
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
  JournalLines(std::string alloc, std::string task, int priority,
               std::string socket_path = "/run/systemd/journal/socket");
  void write(std::string_view data) override;
  void flush() override;

 private:
  void send(std::string_view line);

  std::string alloc_, task_;
  int priority_;
  std::string partial_;
  std::string socket_path_;
  UniqueFd socket_;
};

}  // namespace runscope::driver
