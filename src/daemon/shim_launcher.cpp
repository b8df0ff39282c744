#include "daemon/shim_launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/shim_path.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;

constexpr int kControlFd = 3;
constexpr int kCgroupFd = 4;
constexpr int kScratchFdBase = 10;
// The forked shim could not join its supervisor home (cgroup/cgroup.hpp SupervisorHome).
constexpr int kJoinFailed = 125;

pid_t parse_pid(const std::string& text) {
  try {
    std::size_t used = 0;
    long pid = std::stol(text, &used);
    if (used == text.size() && pid > 0) return static_cast<pid_t>(pid);
  } catch (const std::exception&) {
  }
  return 0;
}

// Only async-signal-safe calls between fork and exec: the daemon has other threads. The child
// first moves itself into its supervisor home (writing "0" moves the writer), so not one of its
// instructions runs in the daemon's own cgroup, which a stop or kill of the daemon's unit empties.
[[noreturn]] void exec_shim(char* const* argv, int control, int cgroup_fd, int devnull, const rlimit* nofile,
                            const std::vector<int>& joins) {
  for (int fd : joins) {
    if (::write(fd, "0", 1) != 1) ::_exit(kJoinFailed);
  }
  int c = ::fcntl(control, F_DUPFD, kScratchFdBase);
  int g = cgroup_fd >= 0 ? ::fcntl(cgroup_fd, F_DUPFD, kScratchFdBase) : -1;
  if (c < 0 || (cgroup_fd >= 0 && g < 0)) ::_exit(127);
  if (::dup2(c, kControlFd) < 0) ::_exit(127);
  if (g >= 0 && ::dup2(g, kCgroupFd) < 0) ::_exit(127);
  for (int fd = 0; fd <= 2; ++fd) ::dup2(devnull, fd);
  ::setsid();
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (nofile != nullptr) ::setrlimit(RLIMIT_NOFILE, nofile);  // the task gets the usual limit
  ::execv(argv[0], argv);
  ::_exit(127);
}

}  // namespace

ShimMessage parse_shim_message(const std::string& text) {
  std::string verb = text.substr(0, text.find(' '));
  std::string rest = text.size() > verb.size() ? text.substr(verb.size() + 1) : "";
  ShimMessage m;
  if ((verb == "place" || verb == "started") && (m.pid = parse_pid(rest)) > 0) {
    m.kind = verb == "place" ? ShimMessage::Kind::place : ShimMessage::Kind::started;
  } else if (verb == "failed") {
    m.kind = ShimMessage::Kind::failed;
    m.error = driver::parse_start_failure(rest);
  } else {
    m.error = Error(ErrorKind::system, "runscope-shim said '" + text + "'");
  }
  return m;
}

siginfo_t kill_and_reap(const UniqueFd& pidfd) noexcept {
  siginfo_t info{};
  if (!pidfd) return info;
  // A shim already exiting keeps the status it exits with: the signal cannot change it.
  ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info, WEXITED) < 0 && errno == EINTR) {
  }
  return info;
}

Error shim_gone(const siginfo_t& reaped, const cgroup::SupervisorHome* home) {
  if (reaped.si_code == CLD_EXITED && reaped.si_status == kJoinFailed && home != nullptr)
    return Error(ErrorKind::system, "runscope-shim could not join its supervisors' cgroup " + home->location());
  return Error(ErrorKind::system, "runscope-shim exited before starting the task");
}

SpawnedShim ExecShimLauncher::spawn(const fs::path& task_dir, const cgroup::TaskCgroup& cg) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) throw_system_error("socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_system_error("open /dev/null");
  int cgroup_fd = cg.clone_into_fd();
  std::vector<std::string> args = {binary_.string(), task_dir.string(), std::to_string(kControlFd)};
  if (cgroup_fd >= 0) args.push_back(std::to_string(kCgroupFd));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  cgroup::SupervisorHome* home = cg.supervisor_home();
  const std::vector<int> joins = home ? home->join_fds() : std::vector<int>{};

  pid_t pid = ::fork();
  if (pid < 0) throw_system_error("fork runscope-shim");
  if (pid == 0) {
    exec_shim(argv.data(), theirs.get(), cgroup_fd, devnull.get(), task_nofile_ ? &*task_nofile_ : nullptr, joins);
  }
  SpawnedShim shim;
  shim.pid = pid;
  shim.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!shim.pidfd) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw_system_error("pidfd_open runscope-shim", err);
  }
  shim.control = std::move(ours);
  return shim;
}

LaunchedShim ShimLauncher::launch(const fs::path& task_dir, cgroup::TaskCgroup& cg, const Deadline& deadline) {
  SpawnedShim spawned = spawn(task_dir, cg);
  LaunchedShim shim;
  shim.pid = spawned.pid;
  shim.pidfd = std::move(spawned.pidfd);
  try {
    for (;;) {
      pollfd p{spawned.control.get(), POLLIN, 0};
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining()).count();
      int n = ::poll(&p, 1, static_cast<int>(ms));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_system_error("poll the shim channel");
      if (n == 0) throw Error(ErrorKind::timeout, "runscope-shim did not start " + task_dir.string() + " in time");
      auto text = driver::receive_message(spawned.control.get());
      if (!text) throw shim_gone(kill_and_reap(shim.pidfd), cg.supervisor_home());
      auto msg = parse_shim_message(*text);
      if (msg.kind == ShimMessage::Kind::place) {
        try {
          cg.place(msg.pid);
          driver::send_message(spawned.control.get(), "ok");
        } catch (const std::exception& e) {
          driver::send_message(spawned.control.get(), std::string("error ") + e.what());
        }
      } else if (msg.kind == ShimMessage::Kind::started) {
        shim.task_pid = msg.pid;
        shim.start_time = driver::process_start_time(shim.pid).value_or(0);
        return shim;
      } else {
        throw msg.error;
      }
    }
  } catch (...) {
    kill_and_reap(shim.pidfd);
    throw;
  }
}

std::optional<rlimit> raise_fd_limit() noexcept {
  rlimit original{};
  if (::getrlimit(RLIMIT_NOFILE, &original) < 0 || original.rlim_cur >= original.rlim_max) return std::nullopt;
  rlimit raised = original;
  raised.rlim_cur = original.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &raised) < 0) return std::nullopt;
  return original;
}

fs::path default_shim_path() { return shim_binary(); }

}  // namespace runscope::daemon
