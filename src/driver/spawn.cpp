#include "driver/spawn.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <thread>

#include "common/error.hpp"
#include "common/sanitizers.hpp"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

// A child that shares the parent's memory (below) must not write errno: it is the TLS of the
// thread that cloned it, asleep until the child's exec, which would wake to a value it never set.
// So the child's syscalls are made here, returning -errno as the kernel does. Elsewhere (and in
// sanitizer builds, whose runtimes the child would share too) the child is a copy of the parent
// and may use glibc's syscall().
#if !RUNSCOPE_SANITIZED && (defined(__x86_64__) || defined(__aarch64__))
#define RUNSCOPE_CHILD_SHARES_MEMORY 1
#else
#define RUNSCOPE_CHILD_SHARES_MEMORY 0
#endif

namespace runscope::driver {
namespace {

#if RUNSCOPE_CHILD_SHARES_MEMORY && defined(__x86_64__)
long child_syscall(long n, long a = 0, long b = 0, long c = 0, long d = 0) {
  long ret;
  register long r10 asm("r10") = d;
  asm volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}
#elif RUNSCOPE_CHILD_SHARES_MEMORY && defined(__aarch64__)
long child_syscall(long n, long a = 0, long b = 0, long c = 0, long d = 0) {
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory", "cc");
  return x0;
}
#else
long child_syscall(long n, long a = 0, long b = 0, long c = 0, long d = 0) {
  const long ret = ::syscall(n, a, b, c, d);
  return ret < 0 ? -errno : ret;
}
#endif

// A pointer as child_syscall's argument.
long arg(const void* p) { return reinterpret_cast<long>(p); }

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
  int started_fd = -1;  // >= 0: the child writes its pid here first (ChildStarter::start_held)
};

// The kernel's struct sigaction for rt_sigaction: glibc's wrapper is not used in the child.
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  std::uint64_t mask;
};

[[noreturn]] void child_fail(const ChildPlan& plan, Stage stage, long neg_err) {
  Report report{stage, static_cast<int>(-neg_err)};
  child_syscall(SYS_write, plan.report_fd, arg(&report), sizeof report);
  child_syscall(SYS_exit_group, kChildFailureCode);
  __builtin_unreachable();
}

bool child_wait_for_release(const ChildPlan& plan) {
  if (plan.hold_fd < 0) return true;
  char go = 0;
  long n;
  do {
    n = child_syscall(SYS_read, plan.hold_fd, arg(&go), 1);
  } while (n == -EINTR);
  return n == 1;
}

void child_reset_signals() {
  KernelSigaction dfl{};  // SIG_DFL is 0
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    child_syscall(SYS_rt_sigaction, sig, arg(&dfl), 0, kKernelSigsetBytes);
  }
}

long child_move_fd(int from, int to) {
  if (from < 0) return 0;
  if (from == to) return child_syscall(SYS_fcntl, to, F_SETFD, 0);
  const long r = child_syscall(SYS_dup3, from, to, 0);
  return r < 0 ? r : 0;
}

// The child joins its cgroup in every hierarchy before anything else, and before exec.
void child_join(const ChildPlan& plan) {
  static const char kSelf = '0';
  for (std::size_t i = 0; i < plan.join_count; ++i) {
    long n;
    do {
      n = child_syscall(SYS_write, plan.join_fds[i], arg(&kSelf), 1);
    } while (n == -EINTR);
    if (n != 1) child_fail(plan, Stage::join, n < 0 ? n : -EIO);
  }
}

// errno values after which execvp goes on to the next PATH entry (glibc's list).
bool try_next_candidate(long err) {
  return err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT;
}

// The PATH search, done by the task's own user: a folder it cannot search answers EACCES whether
// or not the program is in it, so a task learns nothing runscope's root could see and it could not.
[[noreturn]] void child_exec(const ChildPlan& plan) {
  long last = ENOENT;
  bool denied = false;
  for (std::size_t i = 0; i < plan.candidate_count; ++i) {
    last = -child_syscall(SYS_execve, arg(plan.candidates[i]), arg(plan.argv), arg(plan.envp));
    if (last == EACCES) denied = true;
    else if (!try_next_candidate(last)) child_fail(plan, Stage::exec, -last);
  }
  child_fail(plan, Stage::exec, denied ? -EACCES : -last);
}

// Runs in the child after the clone: raw syscalls only (no locks, no allocation, no errno, no
// glibc state that other threads of the parent may have held at clone time), every signal
// blocked until the handlers are reset.
[[noreturn]] void run_child(const ChildPlan& plan) {
  if (plan.started_fd >= 0) {
    const int pid = static_cast<int>(child_syscall(SYS_getpid));
    child_syscall(SYS_write, plan.started_fd, arg(&pid), sizeof pid);
  }
  if (!child_wait_for_release(plan)) child_syscall(SYS_exit_group, kChildFailureCode);
  child_join(plan);
  child_reset_signals();
  std::uint64_t empty_mask = 0;
  if (long r = child_syscall(SYS_rt_sigprocmask, SIG_SETMASK, arg(&empty_mask), 0, kKernelSigsetBytes); r != 0)
    child_fail(plan, Stage::signals, r);
  if (long r = child_syscall(SYS_setsid); r < 0) child_fail(plan, Stage::session, r);
  for (int fd = 0; fd < 3; ++fd) {
    if (long r = child_move_fd(plan.stdio[fd], fd); r < 0) child_fail(plan, Stage::stdio, r);
  }
  // Still root here (when switching): the terminal is the caller's, handed over for this process.
  if (plan.controlling_terminal) {
    if (long r = child_syscall(SYS_ioctl, 0, TIOCSCTTY, 0); r != 0) child_fail(plan, Stage::tty, r);
  }
  if (plan.switch_user) {
    if (long r = child_syscall(SYS_setgroups, static_cast<long>(plan.group_count), arg(plan.groups)); r != 0)
      child_fail(plan, Stage::groups, r);
    if (long r = child_syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid); r != 0) child_fail(plan, Stage::gid, r);
    if (long r = child_syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid); r != 0) child_fail(plan, Stage::uid, r);
  }
  if (plan.cwd != nullptr) {
    if (long r = child_syscall(SYS_chdir, arg(plan.cwd)); r != 0) child_fail(plan, Stage::chdir, r);
  }
  // Nothing of runscope's leaks into the task: every other fd closes at exec (best effort).
  child_syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  child_exec(plan);
}

// One read(2) in the parent, retried on EINTR: a pid or a failure report from the child.
ssize_t read_retrying(int fd, void* buf, std::size_t size) {
  ssize_t n;
  do {
    n = ::read(fd, buf, size);
  } while (n < 0 && errno == EINTR);
  return n;
}

// The stack a child that shares the parent's memory runs on: mapped by the parent, left by the
// child at its exec (or death), which spawn() waits for before this is unmapped.
class ChildStack {
 public:
  ChildStack() = default;
  ChildStack(const ChildStack&) = delete;
  ChildStack& operator=(const ChildStack&) = delete;
  ~ChildStack() {
    if (base_ != nullptr) ::munmap(base_, kSize);
  }
  void* map() {
    base_ = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base_ == MAP_FAILED) {
      base_ = nullptr;
      throw_system_error("mmap of a child's stack");
    }
    // Its lowest page is a guard: an overflow faults instead of writing over the parent's memory.
    if (::mprotect(base_, kGuard, PROT_NONE) != 0) throw_system_error("mprotect of a child's stack guard");
    return static_cast<char*>(base_) + kSize;  // stacks grow down
  }

 private:
  static constexpr std::size_t kSize = 64 * 1024;
  static constexpr std::size_t kGuard = 4096;
  void* base_ = nullptr;
};

// Every signal blocked in the calling thread while it lives: the child starts with that mask and
// keeps it until it has reset the handlers (which, in shared memory, are the parent's code).
class BlockedSignals {
 public:
  BlockedSignals() {
    sigset_t all;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;
  ~BlockedSignals() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

 private:
  sigset_t saved_;
};

int child_entry(void* plan) { run_child(*static_cast<const ChildPlan*>(plan)); }

// A copy of the parent: with a v2 cgroup dirfd (CLONE_INTO_CGROUP needs clone3, which glibc has
// no wrapper for that would put the child on a stack of its own), and in sanitizer builds.
long clone_copy(const ChildPlan& plan, int into_fd, int& pidfd) {
  BlockedSignals blocked;
  clone_args args{};
  args.flags = CLONE_PIDFD | (into_fd >= 0 ? CLONE_INTO_CGROUP : 0);
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = into_fd >= 0 ? static_cast<std::uint64_t>(into_fd) : 0;
  const long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) run_child(plan);
  return pid;
}

constexpr int kVforkFlags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD;

// Starts the child. Where it can, the child borrows the parent's memory until its exec, as
// posix_spawn's does, instead of getting a copy of its page tables: 0.15-0.3 ms less for
// `runscope exec` (docs/driver.md, "Fourth pass"), whose copy also cost it a fault for each page
// it wrote while the child was held. It is a vfork child (CLONE_VFORK) for the OOM killer: the
// killer never picks a task in a vfork, and it kills every user of its victim's memory, so a
// child that only shared the memory, picked in its own exec (a task limit too small for its
// arguments), took runscope with it (docs/driver.md). The cloning thread sleeps until the child has exec'd or died; a held child
// waits for its caller, so it is cloned from a thread of its own and sends its pid on a pipe.
class ChildStarter {
 public:
  ChildStarter() = default;
  ChildStarter(const ChildStarter&) = delete;
  ChildStarter& operator=(const ChildStarter&) = delete;
  // The cloning thread returns once the child has exec'd or died: the caller's Process, declared
  // after this, has killed it if it was never released, and a closed hold pipe ends it anyway.
  ~ChildStarter() {
    if (hold_write_ != nullptr) hold_write_->reset();
    if (thread_.joinable()) thread_.join();
  }

  // The pid, or -1 with errno; `pidfd` is stored by then. `hold_write`: the held child's release.
  long start(ChildPlan& plan, int into_fd, int& pidfd, UniqueFd* hold_write) {
    if (!RUNSCOPE_CHILD_SHARES_MEMORY || into_fd >= 0) return clone_copy(plan, into_fd, pidfd);
    void* top = stack_.map();
    if (hold_write != nullptr) return start_held(plan, top, pidfd, *hold_write);
    BlockedSignals blocked;
    return ::clone(child_entry, top, kVforkFlags, &plan, &pidfd);
  }

 private:
  long start_held(ChildPlan& plan, void* top, int& pidfd, UniqueFd& hold_write) {
    Pipe started = make_pipe();
    plan.started_fd = started.write.get();
    hold_write_ = &hold_write;
    thread_ = std::thread([&plan, &pidfd, top, fd = started.write.get()] {
      BlockedSignals blocked;  // the child's mask, until it has reset the handlers
      if (::clone(child_entry, top, kVforkFlags, &plan, &pidfd) < 0) {
        const int err = -errno;
        (void)!::write(fd, &err, sizeof err);
      }
    });
    int got = 0;
    const ssize_t n = read_retrying(started.read.get(), &got, sizeof got);
    if (n != static_cast<ssize_t>(sizeof got)) throw_system_error("reading a child's pid", n < 0 ? errno : EIO);
    if (got > 0) return got;
    thread_.join();
    errno = got < 0 ? -got : EIO;
    return -1;
  }

  ChildStack stack_;
  std::thread thread_;
  UniqueFd* hold_write_ = nullptr;
};

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
  const ssize_t n = read_retrying(report_read.get(), &report, sizeof report);
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
  ChildStarter starter;  // before `proc`: its stack and thread outlive the child's use of them
  const long pid = starter.start(plan, into_fd, pidfd, held ? &hold.write : nullptr);
  if (pid < 0) throw_system_error("clone for '" + spec.argv.front() + "'");
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
