#include "driver/spawn.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/error.hpp"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace runscope::driver {
namespace {

constexpr const char* kDevNull = "/dev/null";
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr int kChildFailureCode = 127;
constexpr int kKernelSigsetBytes = 8;

// Where in the child's set-up a failure happened; sent to the parent with its errno.
enum class Stage : int { hold, signals, session, stdio, groups, gid, uid, chdir, exec, join, tty };
struct Report {
  Stage stage;
  int err;
};

// Everything the child needs, prepared by the parent: the child only reads it.
struct ChildPlan {
  char* const* candidates;  // the paths execve tries, in order (executable_candidates)
  std::size_t candidate_count;
  char* const* argv;
  char* const* envp;
  const char* cwd;  // nullptr: keep
  int hold_fd;      // -1: not held
  const int* join_fds;  // v1 `tasks` files the child writes "0" to (TaskCgroup::open_join_files)
  std::size_t join_count;
  int report_fd;
  int stdio[3];     // -1: inherit
  bool controlling_terminal;
  bool switch_user;
  uid_t uid;
  gid_t gid;
  const gid_t* groups;
  std::size_t group_count;
};

// The kernel's struct sigaction for rt_sigaction: glibc's wrapper is not used in the child.
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  std::uint64_t mask;
};

[[noreturn]] void child_fail(const ChildPlan& plan, Stage stage, int err) {
  Report report{stage, err};
  ::syscall(SYS_write, plan.report_fd, &report, sizeof report);
  ::syscall(SYS_exit_group, kChildFailureCode);
  __builtin_unreachable();
}

bool child_wait_for_release(const ChildPlan& plan) {
  if (plan.hold_fd < 0) return true;
  char go = 0;
  long n;
  do {
    n = ::syscall(SYS_read, plan.hold_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

void child_reset_signals() {
  KernelSigaction dfl{};  // SIG_DFL is 0
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, kKernelSigsetBytes);
  }
}

bool child_move_fd(int from, int to) {
  if (from < 0) return true;
  if (from == to) return ::syscall(SYS_fcntl, to, F_SETFD, 0) == 0;
  return ::syscall(SYS_dup3, from, to, 0) == to;
}

// The child joins its cgroup in every hierarchy before anything else, and before exec.
void child_join(const ChildPlan& plan) {
  static const char kSelf = '0';
  for (std::size_t i = 0; i < plan.join_count; ++i) {
    long n;
    do {
      n = ::syscall(SYS_write, plan.join_fds[i], &kSelf, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) child_fail(plan, Stage::join, n < 0 ? errno : EIO);
  }
}

// errno values after which execvp goes on to the next PATH entry (glibc's list).
bool try_next_candidate(int err) {
  return err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT;
}

// The PATH search, done by the task's own user: a folder it cannot search answers EACCES whether
// or not the program is in it, so a task learns nothing runscope's root could see and it could not.
[[noreturn]] void child_exec(const ChildPlan& plan) {
  int last = ENOENT;
  bool denied = false;
  for (std::size_t i = 0; i < plan.candidate_count; ++i) {
    ::syscall(SYS_execve, plan.candidates[i], plan.argv, plan.envp);
    last = errno;
    if (last == EACCES) denied = true;
    else if (!try_next_candidate(last)) child_fail(plan, Stage::exec, last);
  }
  child_fail(plan, Stage::exec, denied ? EACCES : last);
}

// Runs in the child after clone3: raw syscalls only (no locks, no allocation, no glibc state
// that other threads of the parent may have held at clone time).
[[noreturn]] void run_child(const ChildPlan& plan) {
  if (!child_wait_for_release(plan)) ::syscall(SYS_exit_group, kChildFailureCode);
  child_join(plan);
  child_reset_signals();
  std::uint64_t empty_mask = 0;
  if (::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty_mask, nullptr, kKernelSigsetBytes) != 0)
    child_fail(plan, Stage::signals, errno);
  if (::syscall(SYS_setsid) < 0) child_fail(plan, Stage::session, errno);
  for (int fd = 0; fd < 3; ++fd) {
    if (!child_move_fd(plan.stdio[fd], fd)) child_fail(plan, Stage::stdio, errno);
  }
  // Still root here (when switching): the terminal is the caller's, handed over for this process.
  if (plan.controlling_terminal && ::syscall(SYS_ioctl, 0, TIOCSCTTY, 0) != 0) child_fail(plan, Stage::tty, errno);
  if (plan.switch_user) {
    if (::syscall(SYS_setgroups, plan.group_count, plan.groups) != 0) child_fail(plan, Stage::groups, errno);
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) child_fail(plan, Stage::gid, errno);
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) child_fail(plan, Stage::uid, errno);
  }
  if (plan.cwd != nullptr && ::syscall(SYS_chdir, plan.cwd) != 0) child_fail(plan, Stage::chdir, errno);
  // Nothing of runscope's leaks into the task: every other fd closes at exec (best effort).
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  child_exec(plan);
}

ErrorKind kind_for(int err) {
  if (err == ENOENT || err == ENOTDIR) return ErrorKind::not_found;
  if (err == EACCES || err == EPERM) return ErrorKind::permission;
  return ErrorKind::system;
}

std::string describe_failure(const Report& report, const SpawnSpec& spec) {
  const std::string program = "'" + spec.argv.front() + "'";
  const std::string why = std::strerror(report.err);
  switch (report.stage) {
    case Stage::exec: return "cannot execute " + program + ": " + why;
    case Stage::chdir: return "cannot change directory to '" + spec.cwd.string() + "' for " + program + ": " + why;
    case Stage::uid:
      return "cannot switch to uid " + std::to_string(spec.credentials->uid) + " for " + program + ": " + why;
    case Stage::gid:
    case Stage::groups:
      return "cannot switch to gid " + std::to_string(spec.credentials->gid) + " for " + program + ": " + why;
    case Stage::stdio: return "cannot redirect standard streams of " + program + ": " + why;
    case Stage::join: return "cannot place " + program + " in its cgroup: " + why;
    case Stage::tty: return "cannot make standard input the controlling terminal of " + program + ": " + why;
    default: return "cannot prepare the process for " + program + ": " + why;
  }
}

class CStrings {
 public:
  explicit CStrings(const std::vector<std::string>& strings) {
    pointers_.reserve(strings.size() + 1);
    for (const auto& s : strings) pointers_.push_back(const_cast<char*>(s.c_str()));
    pointers_.push_back(nullptr);
  }
  char* const* get() const { return pointers_.data(); }

 private:
  std::vector<char*> pointers_;
};

// Created 0600: a task's output is its owner's business (and root's), nobody else's.
UniqueFd open_output(const std::filesystem::path& path, std::string_view stream) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) {
    int err = errno;
    throw Error(kind_for(err), "cannot open " + std::string(stream) + " file '" + path.string() +
                                   "': " + std::strerror(err), err);
  }
  return UniqueFd(fd);
}

// Moves a held child into its cgroup and lets it go. If placing fails, `proc` going out of
// scope in the caller's unwinding kills and reaps the child, still blocked on the pipe.
void release_held(const Process& proc, cgroup::TaskCgroup& cg, UniqueFd& hold_write) {
  cg.place(proc.pid());
  const char go = 1;
  if (::write(hold_write.get(), &go, 1) != 1) throw_system_error("releasing pid " + std::to_string(proc.pid()));
  hold_write.reset();
}

// EOF on the report pipe means execve succeeded (the pipe is CLOEXEC); a report means it did not.
void check_started(Process& proc, UniqueFd& report_read, const SpawnSpec& spec) {
  Report report{};
  ssize_t n;
  do {
    n = ::read(report_read.get(), &report, sizeof report);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return;
  proc.reap();
  if (n != static_cast<ssize_t>(sizeof report)) {
    throw Error(ErrorKind::system, "'" + spec.argv.front() + "' ended before it could be executed");
  }
  throw Error(kind_for(report.err), describe_failure(report, spec), report.err);
}

}  // namespace

std::vector<std::string> executable_candidates(const std::string& program, const std::vector<std::string>& env) {
  if (program.empty()) throw Error(ErrorKind::invalid_argument, "the command is empty");
  if (program.find('/') != std::string::npos) return {program};
  std::string_view search = kDefaultPath;
  for (const auto& entry : env) {
    if (entry.rfind("PATH=", 0) == 0) search = std::string_view(entry).substr(5);
  }
  std::vector<std::string> out;
  for (std::size_t start = 0; start <= search.size();) {
    std::size_t end = search.find(':', start);
    if (end == std::string_view::npos) end = search.size();
    std::string_view dir = search.substr(start, end - start);
    out.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + program);
    start = end + 1;
  }
  return out;
}

Process CloneSpawner::spawn(const SpawnSpec& spec, cgroup::TaskCgroup* cg) {
  if (spec.argv.empty()) throw Error(ErrorKind::invalid_argument, "no command given");
  const std::vector<std::string> candidates =
      spec.path.empty() ? executable_candidates(spec.argv.front(), spec.env) : std::vector{spec.path.string()};
  CStrings paths(candidates), argv(spec.argv), envp(spec.env);
  UniqueFd null_in(spec.stdio_fds[0] < 0 ? ::open(kDevNull, O_RDONLY | O_CLOEXEC) : -1);
  if (spec.stdio_fds[0] < 0 && !null_in) throw_system_error(std::string("open ") + kDevNull);
  UniqueFd out = spec.stdout_path && spec.stdio_fds[1] < 0 ? open_output(*spec.stdout_path, "stdout") : UniqueFd();
  UniqueFd err = spec.stderr_path && spec.stdio_fds[2] < 0 ? open_output(*spec.stderr_path, "stderr") : UniqueFd();
  auto pick = [&](int i, const UniqueFd& own) { return spec.stdio_fds[i] >= 0 ? spec.stdio_fds[i] : own.get(); };
  Pipe report = make_pipe();
  const int into_fd = cg != nullptr ? cg->clone_into_fd() : -1;
  std::vector<UniqueFd> join = cg != nullptr && into_fd < 0 ? cg->open_join_files() : std::vector<UniqueFd>{};
  std::vector<int> join_fds;
  for (const auto& fd : join) join_fds.push_back(fd.get());
  const bool held = cg != nullptr && into_fd < 0 && join.empty();
  Pipe hold = held ? make_pipe() : Pipe{};

  const auto& creds = spec.credentials;
  ChildPlan plan{paths.get(), candidates.size(), argv.get(), envp.get(),
                 spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
                 hold.read.get(), join_fds.data(), join_fds.size(), report.write.get(),
                 {pick(0, null_in), pick(1, out), pick(2, err)}, spec.controlling_terminal,
                 creds.has_value(), creds ? creds->uid : 0, creds ? creds->gid : 0,
                 creds ? creds->groups.data() : nullptr, creds ? creds->groups.size() : 0};

  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_PIDFD | (into_fd >= 0 ? CLONE_INTO_CGROUP : 0);
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = into_fd >= 0 ? static_cast<std::uint64_t>(into_fd) : 0;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) throw_system_error("clone3 for '" + spec.argv.front() + "'");
  if (pid == 0) run_child(plan);

  Process proc(static_cast<pid_t>(pid), UniqueFd(pidfd));
  report.write.reset();
  if (held) {
    hold.read.reset();
    release_held(proc, *cg, hold.write);
  }
  check_started(proc, report.read, spec);
  return proc;
}

}  // namespace runscope::driver
