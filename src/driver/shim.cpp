#include "driver/shim.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/cgroup_join.hpp"
#include "driver/journal_forwarder.hpp"
#include "driver/log_sink.hpp"
#include "driver/shim_protocol.hpp"
#include "driver/spawn.hpp"

namespace runscope::driver {
namespace {

namespace fs = std::filesystem;

// Once the task has ended, how long its journal forwarder gets to send what is left.
constexpr std::chrono::milliseconds kForwarderGrace{5000};

// The task's cgroup as the shim sees it: place() is a round trip to the daemon, which owns the
// real cgroup; with a v2 dirfd the child is cloned straight into it and place() is never called.
// `after_place` runs once the daemon has placed the child and before it is released.
class RemoteCgroup final : public cgroup::TaskCgroup {
 public:
  RemoteCgroup(int control, int cgroup_fd) : control_(control), cgroup_fd_(cgroup_fd) {}
  int clone_into_fd() const override { return cgroup_fd_; }
  void place(pid_t pid) override {
    send_message(control_, "place " + std::to_string(pid));
    auto reply = receive_message(control_);
    if (!reply) throw Error(ErrorKind::system, "the daemon went away before placing the task");
    if (*reply != "ok") throw Error(ErrorKind::system, "placing the task: " + reply->substr(reply->find(' ') + 1));
    if (after_place) after_place(pid);
  }
  std::vector<pid_t> pids() const override { return {}; }
  bool populated() const override { return false; }
  void kill_all(const Deadline&, cgroup::KillMethod) override {}
  void destroy(const Deadline&) override {}
  void set_cpuset(const CpuSet&) override {}
  cgroup::Stats stats() const override { return {}; }
  std::string location() const override { return "daemon-owned"; }

  std::function<void(pid_t)> after_place;

 private:
  int control_;
  int cgroup_fd_;
};

int parse_fd(const char* text) {
  int fd = -1;
  std::string_view s(text);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), fd);
  if (ec != std::errc() || p != s.data() + s.size() || fd < 0) return -1;
  return fd;
}

void ignore_terminal_signals() {
  for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE}) ::signal(sig, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

// What the shim holds while the task runs: the task, and either the pipes it pumps into files
// or the forwarder that sends them to the journal.
struct Supervised {
  Process task;
  LogStream out, err;
  std::optional<JournalForwarder> forwarder;
};

// The forwarder joins the task's cgroups: those the daemon placed the (still held) task in, or
// the v2 folder it was cloned into.
void start_forwarder(const ShimLaunch& launch, Pipe& out, Pipe& err, cgroup::TaskCgroup* join, Supervised& s) {
  ForwarderSpec spec{launch.alloc, launch.task, launch.journal_socket, launch.credentials};
  s.forwarder = JournalForwarder::start(spec, out.read.get(), err.read.get(), join);
  out.read.reset();
  err.read.reset();
}

// Starts the task from launch.json with its output on pipes; throws Error, leaving nothing running.
Supervised start_task(const fs::path& dir, int control, int cgroup_fd) {
  ShimLaunch launch = parse_shim_launch(read_file(dir / kLaunchFile));
  Pipe out_pipe = make_pipe(), err_pipe = make_pipe();
  SpawnSpec spec;
  spec.argv = launch.argv;
  spec.env = launch.env;
  spec.cwd = launch.cwd;
  spec.credentials = launch.credentials;
  spec.stdio_fds = {-1, out_pipe.write.get(), err_pipe.write.get()};
  Supervised s;
  if (!launch.journal) {
    s.out.sink = std::make_unique<RotatingFile>(dir / kStdoutLog, launch.max_size, launch.max_files);
    s.err.sink = std::make_unique<RotatingFile>(dir / kStderrLog, launch.max_size, launch.max_files);
  }
  RemoteCgroup cg(control, cgroup_fd);
  if (launch.journal && cgroup_fd < 0) {
    cg.after_place = [&](pid_t pid) {
      auto paths = cgroup_join_paths(pid);
      const bool apart = !paths.empty();  // false only when the daemon left the task where we are
      JoinOnlyCgroup join(std::move(paths));
      start_forwarder(launch, out_pipe, err_pipe, apart ? &join : nullptr, s);
    };
  }
  s.task = CloneSpawner().spawn(spec, &cg);
  if (launch.journal && !s.forwarder) {
    JoinOnlyCgroup join = JoinOnlyCgroup::of_dirfd(cgroup_fd);
    start_forwarder(launch, out_pipe, err_pipe, &join, s);  // throwing kills the task with `s`
  }
  s.out.fd = std::move(out_pipe.read);
  s.err.fd = std::move(err_pipe.read);
  return s;
}

void wait_for_exit(const Process& task) {
  pollfd p{task.pidfd(), POLLIN, 0};
  while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
}

}  // namespace

int run_shim(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == kForwarderFlag) return run_journal_forwarder(argc, argv);
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: runscope-shim TASK_DIR CONTROL_FD [CGROUP_FD] (started by runscoped)\n");
    return 2;
  }
  fs::path dir = argv[1];
  UniqueFd control(parse_fd(argv[2]));
  UniqueFd cgroup_fd(argc == 4 ? parse_fd(argv[3]) : -1);
  if (!control || (argc == 4 && !cgroup_fd)) {
    std::fprintf(stderr, "runscope-shim: bad file descriptor argument\n");
    return 2;
  }
  ::fcntl(control.get(), F_SETFD, FD_CLOEXEC);
  if (cgroup_fd) ::fcntl(cgroup_fd.get(), F_SETFD, FD_CLOEXEC);
  ignore_terminal_signals();
  ::setsid();  // no-op when the daemon already made us a session leader

  Supervised s;
  try {
    s = start_task(dir, control.get(), cgroup_fd.get());
  } catch (const Error& e) {
    try {
      send_message(control.get(), "failed " + format_start_failure(e));
    } catch (...) {
    }
    return 1;
  }
  try {
    send_message(control.get(), "started " + std::to_string(s.task.pid()));
  } catch (...) {
    // The daemon is gone after placing the task: the task runs confined; keep supervising it.
  }
  control.reset();
  cgroup_fd.reset();

  if (s.forwarder) {
    wait_for_exit(s.task);
    s.forwarder->finish(kForwarderGrace);
  } else {
    pump_until(s.task.pidfd(), s.out, s.err);
  }
  ExitRecord record;
  record.pid = s.task.pid();
  record.status = s.task.reap();
  record.finished_at = std::chrono::system_clock::now();
  try {
    write_exit_record(dir, record);
  } catch (const Error& e) {
    std::fprintf(stderr, "runscope-shim: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace runscope::driver
