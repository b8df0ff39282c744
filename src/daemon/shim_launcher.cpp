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
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;

constexpr int kControlFd = 3;
constexpr int kCgroupFd = 4;
constexpr int kScratchFdBase = 10;
constexpr const char* kInstalledShim = "/usr/libexec/runscope/runscope-shim";

// The shim sends the kind as its number (driver/shim_protocol.hpp); unknown numbers are system.
ErrorKind kind_numbered(const std::string& text) {
  for (auto k : {ErrorKind::invalid_argument, ErrorKind::config, ErrorKind::not_found, ErrorKind::unsupported,
                 ErrorKind::conflict, ErrorKind::resources, ErrorKind::permission, ErrorKind::timeout,
                 ErrorKind::system, ErrorKind::bus}) {
    if (std::to_string(static_cast<int>(k)) == text) return k;
  }
  return ErrorKind::system;
}

void kill_and_reap(pid_t pid, int pidfd) {
  ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
  }
  (void)pid;
}

// Only async-signal-safe calls between fork and exec: the daemon has other threads.
[[noreturn]] void exec_shim(char* const* argv, int control, int cgroup_fd, int devnull, const rlimit* nofile) {
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

LaunchedShim ExecShimLauncher::launch(const fs::path& task_dir, cgroup::TaskCgroup& cg, const Deadline& deadline) {
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

  pid_t pid = ::fork();
  if (pid < 0) throw_system_error("fork runscope-shim");
  if (pid == 0) exec_shim(argv.data(), theirs.get(), cgroup_fd, devnull.get(), task_nofile_ ? &*task_nofile_ : nullptr);
  theirs.reset();
  LaunchedShim shim;
  shim.pid = pid;
  shim.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!shim.pidfd) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw_system_error("pidfd_open runscope-shim", err);
  }
  try {
    for (;;) {
      pollfd p{ours.get(), POLLIN, 0};
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining()).count();
      int n = ::poll(&p, 1, static_cast<int>(ms));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_system_error("poll the shim channel");
      if (n == 0) throw Error(ErrorKind::timeout, "runscope-shim did not start " + task_dir.string() + " in time");
      auto msg = driver::receive_message(ours.get());
      if (!msg) {
        throw Error(ErrorKind::system, "runscope-shim (" + binary_.string() + ") exited before starting the task");
      }
      std::string verb = msg->substr(0, msg->find(' '));
      std::string rest = msg->size() > verb.size() ? msg->substr(verb.size() + 1) : "";
      if (verb == "place") {
        try {
          cg.place(static_cast<pid_t>(std::stol(rest)));
          driver::send_message(ours.get(), "ok");
        } catch (const std::exception& e) {
          driver::send_message(ours.get(), std::string("error ") + e.what());
        }
      } else if (verb == "started") {
        shim.task_pid = static_cast<pid_t>(std::stol(rest));
        shim.start_time = driver::process_start_time(pid).value_or(0);
        return shim;
      } else if (verb == "failed") {
        auto space = rest.find(' ');
        throw Error(kind_numbered(rest.substr(0, space)), space == std::string::npos ? rest : rest.substr(space + 1));
      } else {
        throw Error(ErrorKind::system, "runscope-shim said '" + *msg + "'");
      }
    }
  } catch (...) {
    kill_and_reap(pid, shim.pidfd.get());
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

fs::path default_shim_path() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "runscope-shim";
    if (fs::exists(beside, ec)) return beside;
  }
  return kInstalledShim;
}

}  // namespace runscope::daemon
