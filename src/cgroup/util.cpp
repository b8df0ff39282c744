#include "cgroup/util.hpp"

#include <signal.h>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "cgroup/fs_ops.hpp"
#include "common/error.hpp"

namespace runscope::cgroup {

namespace fs = std::filesystem;

std::vector<pid_t> cg_parse_pids(std::string_view text) {
  std::vector<pid_t> pids;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec != std::errc() || end != line.data() + line.size() || pid <= 0) {
      throw Error(ErrorKind::system, "cgroup.procs holds a line that is not a pid: '" + line + "'");
    }
    pids.push_back(pid);
  }
  return pids;
}

std::map<std::string, std::uint64_t> cg_parse_keyed(std::string_view text) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    std::uint64_t value = 0;
    if (fields >> key >> value) out[key] = value;
  }
  return out;
}

std::optional<std::uint64_t> cg_parse_limit(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text == "max") return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw Error(ErrorKind::system, "not a cgroup limit: '" + std::string(text) + "'");
  }
  return value;
}

std::size_t cg_kill_pids(const std::vector<pid_t>& pids, int sig) {
  std::size_t signalled = 0;
  for (pid_t pid : pids) {
    if (::kill(pid, sig) == 0) ++signalled;
  }
  return signalled;
}

bool cg_poll_until(const Deadline& deadline, const std::function<bool()>& done) {
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    if (done()) return true;
    if (deadline.expired()) return false;
    deadline.clock().sleep_for(std::min<std::chrono::nanoseconds>(pause, deadline.remaining()));
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

std::uint64_t cg_weight_to_shares(std::uint64_t weight) {
  if (weight < kMinCpuWeight || weight > kMaxCpuWeight) {
    throw Error(ErrorKind::invalid_argument, "cpu weight " + std::to_string(weight) + " is outside " +
                                                 std::to_string(kMinCpuWeight) + ".." + std::to_string(kMaxCpuWeight));
  }
  return std::clamp<std::uint64_t>(weight * 1024 / 100, 2, 262144);
}

bool cg_freezer_freeze(const std::function<void(const char*)>& write_state,
                       const std::function<std::string()>& read_state, const Deadline& deadline) {
  constexpr int kAttempts = 1000;
  constexpr int kThawEvery = 50;
  for (int attempt = 1; attempt <= kAttempts && !deadline.expired(); ++attempt) {
    if (attempt % kThawEvery == 0) write_state("THAWED");
    write_state("FROZEN");
    auto state = read_state();
    while (!state.empty() && (state.back() == '\n' || state.back() == ' ')) state.pop_back();
    if (state == "FROZEN") return true;
    deadline.clock().sleep_for(std::min<std::chrono::nanoseconds>(std::chrono::milliseconds(1), deadline.remaining()));
  }
  return false;
}

void cg_check_parent(const fs::path& parent) {
  for (const auto& part : parent) {
    if (part == "..") throw Error(ErrorKind::invalid_argument, "cgroup parent '" + parent.string() + "' contains '..'");
  }
}

std::vector<fs::path> cg_make_path(const CgroupFsOps& ops, const fs::path& base, const fs::path& relative) {
  std::vector<fs::path> made;
  fs::path current = base;
  for (const auto& part : relative.relative_path()) {
    if (part.empty() || part == ".") continue;
    current /= part;
    int err = ops.make_dir(current);
    if (err == 0) {
      made.push_back(current);
    } else if (err != EEXIST) {
      for (auto it = made.rbegin(); it != made.rend(); ++it) ops.remove_dir(*it);
      throw_system_error("mkdir " + current.string(), err);
    }
  }
  return made;
}

}  // namespace runscope::cgroup
