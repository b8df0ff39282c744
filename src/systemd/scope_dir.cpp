#include "systemd/scope_dir.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <sstream>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/file.hpp"

namespace runscope::systemd {
namespace fs = std::filesystem;
namespace {

constexpr auto kPollSlice = std::chrono::milliseconds(50);
constexpr int kMaxKillRounds = 1000;  // freeze path: rounds of SIGKILL before giving up on a storm

std::optional<std::uint64_t> read_key(const std::string& content, std::string_view key) {
  std::istringstream in(content);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

std::optional<std::uint64_t> read_number(const fs::path& file) {
  auto text = read_file_if_exists(file);
  if (!text) return std::nullopt;
  const auto t = trim(*text);
  std::uint64_t v = 0;
  if (std::from_chars(t.data(), t.data() + t.size(), v).ec != std::errc()) return std::nullopt;
  return v;
}

void collect_pids(const fs::path& dir, std::vector<pid_t>& out) {
  auto procs = read_file_if_exists(dir / kCgroupProcs);
  if (!procs) return;  // removed meanwhile
  std::istringstream in(*procs);
  pid_t pid = 0;
  while (in >> pid) out.push_back(pid);
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec)) collect_pids(it->path(), out);
}

void wait_frozen(const fs::path& dir, const Deadline& deadline) {
  while (read_key(read_file_if_exists(dir / kCgroupEvents).value_or(""), "frozen").value_or(1) != 1) {
    if (deadline.expired()) throw Error(ErrorKind::timeout, dir.string() + ": not frozen by the deadline");
    deadline.clock().sleep_for(std::chrono::milliseconds(1));
  }
}

void freeze_kill_thaw(const fs::path& dir, const Deadline& deadline) {
  write_file(dir / kCgroupFreeze, "1");
  try {
    wait_frozen(dir, deadline);
    for (int round = 0; round < kMaxKillRounds; ++round) {
      auto pids = cg_read_pids_recursive(dir);
      if (pids.empty()) break;
      for (pid_t pid : pids) ::kill(pid, SIGKILL);
      // On v2 frozen processes die from SIGKILL; the next read shows who is left.
      if (!cg_is_populated(dir)) break;
    }
  } catch (...) {
    try { write_file(dir / kCgroupFreeze, "0"); } catch (...) {}
    throw;
  }
  write_file(dir / kCgroupFreeze, "0");
}

}  // namespace

std::vector<pid_t> cg_read_pids_recursive(const fs::path& dir) {
  std::vector<pid_t> out;
  collect_pids(dir, out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool cg_is_populated(const fs::path& dir) {
  auto events = read_file_if_exists(dir / kCgroupEvents);
  return events && read_key(*events, "populated").value_or(0) == 1;
}

void cg_wait_unpopulated(const fs::path& dir, const Deadline& deadline) {
  UniqueFd fd(::open((dir / kCgroupEvents).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return;  // the folder is gone, so it is empty
    throw_system_error("open " + (dir / kCgroupEvents).string());
  }
  char buf[256];
  for (;;) {
    const ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    if (n < 0) {
      if (errno == ENODEV || errno == ENOENT) return;
      throw_system_error("read " + (dir / kCgroupEvents).string());
    }
    if (read_key(std::string(buf, static_cast<std::size_t>(n)), "populated").value_or(0) == 0) return;
    if (deadline.expired())
      throw Error(ErrorKind::timeout, dir.string() + ": processes still present at the kill deadline");
    pollfd p{fd.get(), POLLPRI, 0};
    const auto slice = std::min<std::chrono::nanoseconds>(deadline.remaining(), kPollSlice);
    ::poll(&p, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(slice).count()) + 1);
  }
}

void cg_kill_all(const fs::path& dir, const Deadline& deadline, cgroup::KillMethod method) {
  std::error_code ec;
  if (!fs::exists(dir / kCgroupProcs, ec)) return;
  // No new forks while we kill (systemd PR #42388); absent without the pids controller.
  if (fs::exists(dir / kPidsMax, ec)) write_file(dir / kPidsMax, "0");
  const bool has_kill = fs::exists(dir / kCgroupKill, ec);
  if (method == cgroup::KillMethod::cgroup_kill && !has_kill)
    throw Error(ErrorKind::unsupported, dir.string() + ": " + kCgroupKill + " missing (kernel older than 5.14)");
  if (has_kill && method != cgroup::KillMethod::freeze) {
    write_file(dir / kCgroupKill, "1");
  } else {
    freeze_kill_thaw(dir, deadline);
  }
  cg_wait_unpopulated(dir, deadline);
}

cgroup::Stats cg_read_stats(const fs::path& dir) {
  cgroup::Stats stats;
  const auto cpu = read_file_if_exists(dir / kCpuStat).value_or("");
  stats.cpu_user = std::chrono::microseconds(read_key(cpu, "user_usec").value_or(0));
  stats.cpu_system = std::chrono::microseconds(read_key(cpu, "system_usec").value_or(0));
  stats.memory_current = read_number(dir / kMemoryCurrent);
  stats.memory_peak = read_number(dir / kMemoryPeak);
  stats.pids_current = read_number(dir / kPidsCurrent);
  stats.oom_kills = read_key(read_file_if_exists(dir / kMemoryEvents).value_or(""), "oom_kill").value_or(0);
  return stats;
}

}  // namespace runscope::systemd
