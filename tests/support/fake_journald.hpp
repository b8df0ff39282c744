// A stand-in for journald's native socket: a datagram socket that asks for each sender's
// credentials (SO_PASSCRED, as journald does), so tests see who sent a line as journald would.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/fd.hpp"

namespace runscope::testing {

struct JournalEntry {
  std::map<std::string, std::string> fields;  // KEY=VALUE lines of the native protocol
  pid_t pid = 0;                              // from SCM_CREDENTIALS
  uid_t uid = 0;
  gid_t gid = 0;
  std::string sender_cgroup;  // /proc/PID/cgroup of the sender when the entry was read ("" if gone)
};

class FakeJournald {
 public:
  // Binds `path` (mode 0666, so tasks of any user may send to it).
  explicit FakeJournald(std::filesystem::path path);
  const std::filesystem::path& path() const { return path_; }
  // Reads entries until `count` are in or `budget` passes; returns what it got.
  std::vector<JournalEntry> receive(std::size_t count, std::chrono::milliseconds budget);

 private:
  std::filesystem::path path_;
  UniqueFd socket_;
};

}  // namespace runscope::testing
