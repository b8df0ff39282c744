// `runscope enter ALLOC TASK [--user U] [-t] [--env K=V]... [--cwd D] -- CMD [ARGS...]`: runs CMD
// inside a running task through runscoped's EnterTask, and exits with CMD's code (128+N for
// signal N). Without -t CMD gets this process's own stdin, stdout and stderr. With -t it gets the
// slave of a pseudo-terminal made here; this process relays between its own terminal (put in raw
// mode, so ^C, ^Z and friends reach CMD) and the master, and passes window size changes on.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"
#include "common/fd.hpp"

namespace runscope::cli {
namespace {

struct Options {
  TaskArgs task;
  std::string user, cwd;
  std::vector<std::string> env, command;
  bool tty = false;
};

driver::EnterSpec spec_of(const Options& o) {
  driver::EnterSpec spec;
  spec.command = o.command.front();
  spec.args.assign(o.command.begin() + 1, o.command.end());
  for (const auto& kv : o.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(ErrorKind::invalid_argument, "--env '" + kv + "': expected KEY=VALUE");
    }
    spec.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!o.user.empty()) spec.user = o.user;
  if (!o.cwd.empty()) spec.cwd = o.cwd;
  spec.tty = o.tty;
  return spec;
}

// The terminal's settings before raw mode, restored on every way out (a handler covers the
// signals that would otherwise end us with the terminal left raw).
termios g_saved{};
bool g_raw = false;
int g_wake = -1;  // the relay's self-pipe: SIGWINCH

void restore_terminal() {
  if (g_raw) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved);
}

extern "C" void on_fatal_signal(int sig) {
  restore_terminal();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

extern "C" void on_winch(int) {
  const char w = 'w';
  if (g_wake >= 0) (void)!::write(g_wake, &w, 1);
}

struct RawTerminal {
  RawTerminal() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &g_saved) != 0) return;
    termios raw = g_saved;
    ::cfmakeraw(&raw);
    for (int sig : {SIGTERM, SIGHUP, SIGQUIT}) ::signal(sig, on_fatal_signal);
    if (::tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) g_raw = true;
  }
  ~RawTerminal() {
    restore_terminal();
    g_raw = false;
  }
};

void copy_window_size(int master) {
  winsize size{};
  for (int fd : {STDIN_FILENO, STDOUT_FILENO}) {
    if (::ioctl(fd, TIOCGWINSZ, &size) == 0) {
      ::ioctl(master, TIOCSWINSZ, &size);
      return;
    }
  }
}

// Moves what is readable from `from` to `to`; false on EOF or error (EIO: the slave side closed).
bool pass(int from, int to) {
  char buf[8192];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  for (ssize_t done = 0; done < n;) {
    ssize_t w = ::write(to, buf + done, static_cast<std::size_t>(n - done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    done += w;
  }
  return true;
}

// The relay: stdin -> master, master -> stdout, window size changes, until `stop` is readable;
// then what CMD wrote before it ended is drained (non-blocking: a leftover background job that
// keeps the terminal open does not hold us).
void relay(int master, int wake, int stop) {
  bool in_open = true;
  for (;;) {
    pollfd fds[4] = {{master, POLLIN, 0}, {wake, POLLIN, 0}, {stop, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    if (::poll(fds, in_open ? 4 : 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) pass(master, STDOUT_FILENO);
    if (fds[1].revents & POLLIN) {
      char drain[64];
      (void)!::read(wake, drain, sizeof drain);
      copy_window_size(master);
    }
    if (fds[2].revents) break;
    if (in_open && (fds[3].revents & (POLLIN | POLLHUP)) && !pass(STDIN_FILENO, master)) {
      in_open = false;
      const char eof = 4;  // ^D: the terminal's end of input for CMD
      (void)!::write(master, &eof, 1);
    }
  }
  ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
  while (pass(master, STDOUT_FILENO)) {
    pollfd more{master, POLLIN, 0};
    if (::poll(&more, 1, 0) <= 0) break;
  }
}

struct Pty {
  UniqueFd master, slave;
};

Pty open_pty() {
  Pty p;
  p.master.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!p.master || ::grantpt(p.master.get()) != 0 || ::unlockpt(p.master.get()) != 0) {
    throw_system_error("cannot make a pseudo-terminal");
  }
  char name[128];
  if (::ptsname_r(p.master.get(), name, sizeof name) != 0) throw_system_error("ptsname");
  p.slave.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!p.slave) throw_system_error(std::string("open ") + name);
  return p;
}

int enter_with_tty(api::ManagerClient& client, const TaskId& id, const driver::EnterSpec& spec) {
  Pty pty = open_pty();
  copy_window_size(pty.master.get());
  Pipe wake = make_pipe(), stop = make_pipe();
  g_wake = wake.write.get();
  ::signal(SIGWINCH, on_winch);
  RawTerminal raw;
  std::thread relayer([&] { relay(pty.master.get(), wake.read.get(), stop.read.get()); });
  int status = 0;
  std::exception_ptr failed;
  try {
    status = client.enter(id, spec, pty.slave.get(), pty.slave.get(), pty.slave.get());
  } catch (...) {
    failed = std::current_exception();
  }
  pty.slave.reset();
  stop.write.reset();  // the relay drains and ends
  relayer.join();
  ::signal(SIGWINCH, SIG_DFL);
  g_wake = -1;
  if (failed) std::rethrow_exception(failed);
  return status;
}

}  // namespace

Command add_enter(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("enter", "Run a command inside a running task (its cgroup, user, env and cwd)");
  add_task_args(*sub, o->task);
  sub->add_option("--user", o->user, "Run as this user (default: the task's; only root may name another)");
  sub->add_flag("-t,--tty", o->tty, "Give the command a pseudo-terminal (interactive shells)");
  // One value per --env, so `--env K=V ALLOC TASK` and `--env K=V -- CMD` parse as meant.
  sub->add_option("--env", o->env, "KEY=VALUE over the task's environment (repeatable)")->allow_extra_args(false);
  sub->add_option("--cwd", o->cwd, "Working directory (default: the task's)");
  sub->add_option("command", o->command, "The command and its arguments, after --")->required();
  return {sub, [&globals, o] {
            auto spec = spec_of(*o);
            auto client = connect_daemon(globals);
            if (o->tty) return enter_with_tty(*client, o->task.id(), spec);
            return client->enter(o->task.id(), spec, STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO);
          }};
}

}  // namespace runscope::cli
