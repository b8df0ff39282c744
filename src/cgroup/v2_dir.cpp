#include "cgroup/v2_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "cgroup/util.hpp"
#include "common/error.hpp"

namespace runscope::cgroup {
namespace {

std::string where(const std::filesystem::path& dir, std::string_view file) {
  return (dir / std::string(file)).string();
}

std::optional<std::uint64_t> read_number(const V2Dir& dir, std::string_view file) {
  auto text = dir.read(file);
  if (!text) return std::nullopt;
  return cg_parse_limit(*text);
}

}  // namespace

V2Dir V2Dir::open(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    if (err == ENOENT) throw Error(ErrorKind::not_found, "cgroup " + path.string() + " does not exist", err);
    throw_system_error("open cgroup " + path.string(), err);
  }
  return V2Dir(std::move(fd), path);
}

bool V2Dir::has(std::string_view file) const {
  return ::faccessat(fd_.get(), std::string(file).c_str(), F_OK, 0) == 0;
}

std::optional<std::string> V2Dir::read(std::string_view file) const {
  UniqueFd fd(::openat(fd_.get(), std::string(file).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ENODEV) return std::nullopt;
    throw_system_error("open " + where(path_, file));
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENODEV) return std::nullopt;  // the cgroup was removed under us
      throw_system_error("read " + where(path_, file));
    }
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::string V2Dir::read_required(std::string_view file) const {
  auto text = read(file);
  if (!text) throw Error(ErrorKind::not_found, where(path_, file) + " does not exist", ENOENT);
  return *text;
}

void V2Dir::write(std::string_view file, std::string_view value) const {
  UniqueFd fd(::openat(fd_.get(), std::string(file).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) throw_system_error("open " + where(path_, file));
  // Control files take one write; a short write means the kernel rejected the rest.
  ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) throw_system_error("write '" + std::string(value) + "' to " + where(path_, file));
}

std::vector<pid_t> V2Dir::pids() const { return cg_parse_pids(read(v2file::kProcs).value_or("")); }

bool V2Dir::populated() const {
  auto events = read(v2file::kEvents);
  if (!events) return false;  // removed: nothing can be in it
  return cg_parse_keyed(*events)["populated"] != 0;
}

bool V2Dir::frozen() const {
  auto events = read(v2file::kEvents);
  return events && cg_parse_keyed(*events)["frozen"] != 0;
}

void V2Dir::freeze(const Deadline& deadline) const {
  write(v2file::kFreeze, "1");
  if (cg_poll_until(deadline, [this] { return frozen(); })) return;
  try_thaw();
  throw Error(ErrorKind::timeout, "cgroup " + path_.string() + " did not report frozen 1 in time; thawed it again");
}

void V2Dir::thaw() const { write(v2file::kFreeze, "0"); }

bool V2Dir::try_thaw() const noexcept {
  try {
    if (has(v2file::kFreeze)) thaw();
    return true;
  } catch (...) {
    return false;
  }
}

void V2Dir::kill() const {
  if (!has(v2file::kKill)) {
    throw Error(ErrorKind::unsupported, "cgroup.kill is missing in " + path_.string() + " (needs kernel 5.14+)");
  }
  write(v2file::kKill, "1");
}

void V2Dir::wait_empty(const Deadline& deadline, bool resend_sigkill) const {
  bool empty = cg_poll_until(deadline, [&] {
    auto left = pids();
    if (resend_sigkill) cg_kill_pids(left, SIGKILL);
    return left.empty() && !populated();
  });
  if (!empty) {
    throw Error(ErrorKind::timeout, "cgroup " + path_.string() + " still holds " + std::to_string(pids().size()) +
                                        " process(es) after the kill deadline");
  }
}

void V2Dir::kill_all(const Deadline& deadline, KillMethod method) const {
  // No forks from here on: a fork racing the kill fails instead of escaping it.
  if (has(v2file::kPidsMax)) {
    try {
      write(v2file::kPidsMax, "0");
    } catch (const Error&) {
      // Best effort: the kill below is still complete without it.
    }
  }
  bool use_kill = method == KillMethod::cgroup_kill || (method == KillMethod::automatic && has(v2file::kKill));
  if (use_kill) {
    kill();
    wait_empty(deadline);
    return;
  }
  bool froze = false;
  try {
    freeze(deadline);
    froze = true;
  } catch (const Error&) {
    // Could not freeze in time (and it thawed): fall back to SIGKILL rounds below.
  }
  try {
    cg_kill_pids(pids(), SIGKILL);
  } catch (...) {
    try_thaw();
    throw;
  }
  // v2 delivers SIGKILL to frozen tasks, but they can only exit once thawed.
  if (froze) thaw();
  wait_empty(deadline, /*resend_sigkill=*/true);
}

Stats V2Dir::stats() const {
  Stats s;
  auto cpu = cg_parse_keyed(read(v2file::kCpuStat).value_or(""));
  s.cpu_user = std::chrono::microseconds(cpu["user_usec"]);
  s.cpu_system = std::chrono::microseconds(cpu["system_usec"]);
  s.memory_current = read_number(*this, v2file::kMemoryCurrent);
  s.memory_peak = read_number(*this, v2file::kMemoryPeak);
  s.pids_current = read_number(*this, v2file::kPidsCurrent);
  s.oom_kills = cg_parse_keyed(read(v2file::kMemoryEvents).value_or(""))["oom_kill"];
  return s;
}

void V2Dir::set_cpuset(const CpuSet& cpus) const {
  if (cpus.empty()) throw Error(ErrorKind::invalid_argument, "refusing an empty cpuset for " + path_.string());
  if (!has(v2file::kCpusetCpus)) {
    throw Error(ErrorKind::unsupported, "cgroup v2 controller 'cpuset' is not enabled for " + path_.string());
  }
  write(v2file::kCpusetCpus, cpus.to_string());
}

}  // namespace runscope::cgroup
