#include "driver/shim.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/log_sink.hpp"
#include "driver/shim_protocol.hpp"
#include "driver/spawn.hpp"

namespace runscope::driver {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kPumpChunk = 64 * 1024;
constexpr int kDrainRounds = 64;  // after the task ends, what is already buffered, no more
constexpr int kJournalInfo = 6, kJournalErr = 3;

// The task's cgroup as the shim sees it: place() is a round trip to the daemon, which owns the
// real cgroup; with a v2 dirfd the child is cloned straight into it and place() is never called.
class RemoteCgroup final : public cgroup::TaskCgroup {
 public:
  RemoteCgroup(int control, int cgroup_fd) : control_(control), cgroup_fd_(cgroup_fd) {}
  int clone_into_fd() const override { return cgroup_fd_; }
  void place(pid_t pid) override {
    send_message(control_, "place " + std::to_string(pid));
    auto reply = receive_message(control_);
    if (!reply) throw Error(ErrorKind::system, "the daemon went away before placing the task");
    if (*reply != "ok") throw Error(ErrorKind::system, "placing the task: " + reply->substr(reply->find(' ') + 1));
  }
  std::vector<pid_t> pids() const override { return {}; }
  bool populated() const override { return false; }
  void kill_all(const Deadline&, cgroup::KillMethod) override {}
  void destroy(const Deadline&) override {}
  void set_cpuset(const CpuSet&) override {}
  cgroup::Stats stats() const override { return {}; }
  std::string location() const override { return "daemon-owned"; }

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

struct Stream {
  UniqueFd fd;
  std::unique_ptr<LogSink> sink;
};

// Reads what is there; false at EOF or error.
bool pump(Stream& s) {
  char buf[kPumpChunk];
  ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  s.sink->write(std::string_view(buf, static_cast<std::size_t>(n)));
  return true;
}

void pump_until_exit(Process& task, Stream& out, Stream& err) {
  bool out_open = true, err_open = true;
  for (;;) {
    pollfd fds[3] = {{task.pidfd(), POLLIN, 0}, {out_open ? out.fd.get() : -1, POLLIN, 0},
                     {err_open ? err.fd.get() : -1, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) out_open = pump(out);
    if (fds[2].revents) err_open = pump(err);
    if (fds[0].revents) break;
  }
  // The task is gone; take what it left in the pipes without waiting for children holding them.
  for (Stream* s : {&out, &err}) {
    ::fcntl(s->fd.get(), F_SETFL, O_NONBLOCK);
    for (int i = 0; i < kDrainRounds; ++i) {
      char buf[kPumpChunk];
      ssize_t n = ::read(s->fd.get(), buf, sizeof buf);
      if (n <= 0) break;
      s->sink->write(std::string_view(buf, static_cast<std::size_t>(n)));
    }
    s->sink->flush();
  }
}

std::string proc_fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Starts the task from launch.json with its output on pipes to the sinks; throws Error.
Process start_task(const fs::path& dir, int control, int cgroup_fd, Stream& out, Stream& err) {
  ShimLaunch launch = parse_shim_launch(read_file(dir / kLaunchFile));
  Pipe out_pipe = make_pipe(), err_pipe = make_pipe();
  SpawnSpec spec;
  spec.argv = launch.argv;
  spec.env = launch.env;
  spec.cwd = launch.cwd;
  spec.credentials = launch.credentials;
  // The spawner opens outputs by path; the pipes' write ends reopened through /proc are pipes too.
  spec.stdout_path = proc_fd_path(out_pipe.write.get());
  spec.stderr_path = proc_fd_path(err_pipe.write.get());
  if (launch.journal) {
    out.sink = std::make_unique<JournalLines>(launch.alloc, launch.task, kJournalInfo);
    err.sink = std::make_unique<JournalLines>(launch.alloc, launch.task, kJournalErr);
  } else {
    out.sink = std::make_unique<RotatingFile>(dir / kStdoutLog, launch.max_size, launch.max_files);
    err.sink = std::make_unique<RotatingFile>(dir / kStderrLog, launch.max_size, launch.max_files);
  }
  RemoteCgroup cg(control, cgroup_fd);
  Process task = CloneSpawner().spawn(spec, &cg);
  out.fd = std::move(out_pipe.read);
  err.fd = std::move(err_pipe.read);
  return task;
}

}  // namespace

int run_shim(int argc, char** argv) {
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

  Process task;
  Stream out, err;
  try {
    task = start_task(dir, control.get(), cgroup_fd.get(), out, err);
  } catch (const Error& e) {
    try {
      send_message(control.get(), "failed " + std::to_string(static_cast<int>(e.kind())) + " " + e.what());
    } catch (...) {
    }
    return 1;
  }
  try {
    send_message(control.get(), "started " + std::to_string(task.pid()));
  } catch (...) {
    // The daemon is gone after placing the task: the task runs confined; keep supervising it.
  }
  control.reset();
  cgroup_fd.reset();

  pump_until_exit(task, out, err);
  ExitRecord record;
  record.pid = task.pid();
  record.status = task.reap();
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
