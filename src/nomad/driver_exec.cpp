// ExecTask and ExecTaskStreaming run a command inside a running task through runscoped's
// EnterTask, behind Daemon::enter(): the command gets pipes, or with a tty the slave of a pty the
// plugin opened (EnterTask makes it the controlling terminal). Against a runscoped without
// EnterTask (older) they answer UNIMPLEMENTED with the reason, and Capabilities says exec = false.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <future>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "nomad/driver_service.hpp"
#include "nomad/status.hpp"

namespace runscope::nomad {
namespace {

constexpr std::size_t kMaxCapture = 1u << 20;  // per stream: ExecTask serves health-check scripts

grpc::Status unimplemented() { return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, kExecNeedsEnterTask); }

// Reads both pipes to their end, keeping at most kMaxCapture bytes of each.
void drain(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  int open_count = 2;
  char buf[65536];
  while (open_count > 0 && ::poll(fds, 2, -1) >= 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      auto n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        auto room = kMaxCapture - std::min(kMaxCapture, sinks[i]->size());
        sinks[i]->append(buf, std::min<std::size_t>(room, static_cast<std::size_t>(n)));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
}

struct ExecRun {
  std::string out, err;
  int status = -1;
};

// Runs the command to its end on a thread of its own, which owns everything it touches, so a
// timed-out ExecTask can answer while the command goes on.
std::future<ExecRun> run_entered(std::shared_ptr<Daemon> daemon, TaskId id, EnterSpec spec) {
  return std::async(std::launch::async, [daemon = std::move(daemon), id = std::move(id), spec = std::move(spec)] {
    auto out = make_pipe();
    auto err = make_pipe();
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ExecRun run;
    std::thread reader([&] { drain(out.read.get(), err.read.get(), run.out, run.err); });
    try {
      run.status = daemon->enter(id, spec, null.get(), out.write.get(), err.write.get());
    } catch (...) {
      out.write.reset();
      err.write.reset();
      reader.join();
      throw;
    }
    out.write.reset();
    err.write.reset();
    reader.join();
    return run;
  });
}

// The command's end of the streams: a pty (all three fds are its slave) or three pipes.
struct ExecFds {
  UniqueFd in, out, err;           // what the entered command gets
  UniqueFd to_stdin, from_out, from_err;  // the plugin's ends (from_err unused with a tty)
};

ExecFds exec_fds(bool tty) {
  ExecFds fds;
  if (tty) {
    int master = -1, slave = -1;
    if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) throw_system_error("openpty");
    fds.to_stdin = UniqueFd(master);
    fds.from_out = UniqueFd(::fcntl(master, F_DUPFD_CLOEXEC, 0));
    fds.in = UniqueFd(slave);
    fds.out = UniqueFd(::fcntl(slave, F_DUPFD_CLOEXEC, 0));
    fds.err = UniqueFd(::fcntl(slave, F_DUPFD_CLOEXEC, 0));
    return fds;
  }
  auto in = make_pipe(), out = make_pipe(), err = make_pipe();
  fds.in = std::move(in.read), fds.to_stdin = std::move(in.write);
  fds.out = std::move(out.write), fds.from_out = std::move(out.read);
  fds.err = std::move(err.write), fds.from_err = std::move(err.read);
  return fds;
}

using ExecStream = grpc::ServerReaderWriter<proto::ExecTaskStreamingResponse, proto::ExecTaskStreamingRequest>;

// Copies one of the command's outputs to the stream until its end (EIO: a pty's last close).
void pump_output(int fd, bool is_stderr, ExecStream& stream, std::mutex& write_lock) {
  char buf[32768];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    proto::ExecTaskStreamingResponse out;
    (is_stderr ? out.mutable_stderr() : out.mutable_stdout())->set_data(buf, static_cast<std::size_t>(n));
    std::lock_guard lock(write_lock);
    stream.Write(out);
  }
  proto::ExecTaskStreamingResponse closed;
  (is_stderr ? closed.mutable_stderr() : closed.mutable_stdout())->set_close(true);
  std::lock_guard lock(write_lock);
  stream.Write(closed);
}

// Client messages after the setup: stdin data, stdin close, terminal sizes.
void pump_input(ExecStream& stream, ExecFds& fds, bool tty) {
  proto::ExecTaskStreamingRequest in;
  while (stream.Read(&in)) {
    const auto& data = in.stdin().data();
    for (std::size_t done = 0; done < data.size() && fds.to_stdin;) {
      auto n = ::write(fds.to_stdin.get(), data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    if (in.stdin().close() && !tty) fds.to_stdin.reset();
    if (in.has_tty_size() && tty) {
      winsize size{static_cast<unsigned short>(in.tty_size().height()),
                   static_cast<unsigned short>(in.tty_size().width()), 0, 0};
      ::ioctl(fds.to_stdin.get(), TIOCSWINSZ, &size);
    }
  }
}

// Runs the entered command with the stream as its terminal or pipes, and reports its exit.
void stream_exec(Daemon& daemon, const TaskId& id, const EnterSpec& spec, grpc::ServerContext* context,
                ExecStream& stream) {
  auto fds = exec_fds(spec.tty);
  std::mutex write_lock;
  std::thread out([&] { pump_output(fds.from_out.get(), false, stream, write_lock); });
  std::thread err;
  if (!spec.tty) err = std::thread([&] { pump_output(fds.from_err.get(), true, stream, write_lock); });
  auto input = std::async(std::launch::async, [&] { pump_input(stream, fds, spec.tty); });
  int status = -1;
  std::exception_ptr failure;  // rethrown once every thread here has ended
  try {
    status = daemon.enter(id, spec, fds.in.get(), fds.out.get(), fds.err.get());
  } catch (...) {
    failure = std::current_exception();
  }
  // The daemon holds its own copies while the command runs; ours go now, so the outputs end.
  fds.in.reset(), fds.out.reset(), fds.err.reset();
  out.join();
  if (err.joinable()) err.join();
  if (!failure) {
    proto::ExecTaskStreamingResponse done;
    done.set_exited(true);
    done.mutable_result()->set_exit_code(status);
    if (status > 128) done.mutable_result()->set_signal(status - 128);  // EnterTask's 128+N
    stream.Write(done);
  }
  // The client half-closes once it has the exit; one that does not (or a failure, which no
  // message can carry while a Read is pending) is cut off.
  if (failure || input.wait_for(std::chrono::seconds(2)) != std::future_status::ready) context->TryCancel();
  input.wait();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

grpc::Status DriverService::ExecTask(grpc::ServerContext*, const proto::ExecTaskRequest* in,
                                     proto::ExecTaskResponse* out) {
  return answer([&] {
    auto record = tasks_.get(in->task_id());
    if (in->command().empty()) throw Error(ErrorKind::invalid_argument, "exec needs a command");
    EnterSpec spec{in->command(0), {in->command().begin() + 1, in->command().end()}, {}, false, {}, {}};
    auto link = state_.link();
    if (!link.daemon->can_enter()) return unimplemented();
    auto future = run_entered(link.daemon, record.id, spec);
    auto timeout = to_duration(in->timeout());
    if (timeout.count() > 0 && future.wait_for(timeout) != std::future_status::ready) {
      // The command goes on; its thread ends with it. (EnterTask has no cancel.)
      std::thread([f = std::move(future)]() mutable { f.wait(); }).detach();
      throw Error(ErrorKind::timeout, "exec in " + in->task_id() + " did not end within " + format_duration(timeout));
    }
    auto run = future.get();
    out->set_stdout(run.out);
    out->set_stderr(run.err);
    auto* result = out->mutable_result();
    result->set_exit_code(run.status);
    if (run.status > 128) result->set_signal(run.status - 128);  // EnterTask's 128+N
    return grpc::Status::OK;
  });
}

grpc::Status DriverService::ExecTaskStreaming(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<proto::ExecTaskStreamingResponse, proto::ExecTaskStreamingRequest>* stream) {
  return answer([&] {
    proto::ExecTaskStreamingRequest first;
    if (!stream->Read(&first) || !first.has_setup()) {
      throw Error(ErrorKind::invalid_argument, "streaming exec starts with a setup message");
    }
    const auto& setup = first.setup();
    auto record = tasks_.get(setup.task_id());
    if (setup.command().empty()) throw Error(ErrorKind::invalid_argument, "exec needs a command");
    auto link = state_.link();
    if (!link.daemon->can_enter()) return unimplemented();
    EnterSpec spec{setup.command(0), {setup.command().begin() + 1, setup.command().end()}, {}, setup.tty(), {}, {}};
    stream_exec(*link.daemon, record.id, spec, context, *stream);
    return grpc::Status::OK;
  });
}

}  // namespace runscope::nomad
