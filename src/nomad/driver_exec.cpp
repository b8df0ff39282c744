// ExecTask and ExecTaskStreaming run a command inside a running task through runscoped's
// EnterTask (wave 2, coord/BULLETIN.md), behind Daemon::enter(). Until the daemon offers it they
// answer UNIMPLEMENTED with the reason, and Capabilities says exec = false.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <future>
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

}  // namespace

grpc::Status DriverService::ExecTask(grpc::ServerContext*, const proto::ExecTaskRequest* in,
                                     proto::ExecTaskResponse* out) {
  return answer([&] {
    auto record = tasks_.get(in->task_id());
    if (in->command().empty()) throw Error(ErrorKind::invalid_argument, "exec needs a command");
    EnterSpec spec{in->command(0), {in->command().begin() + 1, in->command().end()}, {}, false};
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
    grpc::ServerContext*,
    grpc::ServerReaderWriter<proto::ExecTaskStreamingResponse, proto::ExecTaskStreamingRequest>* stream) {
  return answer([&] {
    proto::ExecTaskStreamingRequest first;
    if (!stream->Read(&first) || !first.has_setup()) {
      throw Error(ErrorKind::invalid_argument, "streaming exec starts with a setup message");
    }
    tasks_.get(first.setup().task_id());
    if (!state_.link().daemon->can_enter()) return unimplemented();
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "streaming exec (nomad alloc exec) is not wired to runscoped's EnterTask yet");
  });
}

}  // namespace runscope::nomad
