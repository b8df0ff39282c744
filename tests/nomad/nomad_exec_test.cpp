// The plugin side of exec (ExecTask, ExecTaskStreaming) over gRPC, against EnterTask's contract
// as the bulletin defines it (the fds become the command's 0/1/2; with a tty the caller's pty
// slave is its controlling terminal; the status is the exit code or 128+N). LocalEnter honours
// that contract here, in the test's own process tree; the host lifecycle test drives the real
// EnterTask of a real runscoped.
#include <gtest/gtest.h>

#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <msgpack.hpp>

#include "common/error.hpp"
#include "nomad/driver_service.hpp"

namespace runscope::nomad {
namespace {

class LocalEnter final : public Daemon {
 public:
  TaskId start(const std::string& spec) override {
    auto j = nlohmann::json::parse(spec);
    return TaskId(j["alloc"], j["task"]);
  }
  nlohmann::json inspect(const TaskId&) override { return {{"state", "running"}, {"pid", 1}}; }
  bool can_enter() const override { return true; }
  int enter(const TaskId&, const EnterSpec& spec, int in, int out, int err) override {
    std::vector<std::string> args{spec.command};
    args.insert(args.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
      if (spec.tty) {
        ::setsid();
        ::ioctl(in, TIOCSCTTY, 0);
      }
      ::dup2(in, 0), ::dup2(out, 1), ::dup2(err, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void stop(const TaskId&, std::optional<Duration>) override { no(); }
  void signal(const TaskId&, int) override { no(); }
  void destroy(const TaskId&) override { no(); }
  std::map<std::string, std::uint64_t> stats(const TaskId&) override { no(); }
  std::map<std::string, std::string> fingerprint() override { no(); }
  std::string version() override { no(); }

 private:
  [[noreturn]] static void no() { throw Error(ErrorKind::unsupported, "not in this test"); }
};

class NoFeed final : public StateFeed {
 public:
  std::unique_ptr<Subscription> subscribe(Callback) override { return std::make_unique<Subscription>(*this, 0); }

 protected:
  void unsubscribe(std::uint64_t) override {}
};

class ExecThroughThePlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&driver_);
    server_ = builder.BuildAndStart();
    stub_ = proto::Driver::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
    msgpack::sbuffer config;
    msgpack::packer<msgpack::sbuffer> pack(config);
    pack.pack_map(1);
    pack.pack(std::string("command"));
    pack.pack(std::string("/bin/sleep"));
    proto::StartTaskRequest start;
    start.mutable_task()->set_id(task_id_);
    start.mutable_task()->set_name("web");
    start.mutable_task()->set_alloc_id("a1");
    start.mutable_task()->set_msgpack_driver_config(std::string(config.data(), config.size()));
    proto::StartTaskResponse started;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->StartTask(&ctx, start, &started).ok());
  }
  void TearDown() override { server_->Shutdown(); }

  // Runs a streaming exec: sends `setup`, then `inputs`; collects output until exited.
  struct Streamed {
    std::string out, err;
    proto::ExitResult result;
    bool exited = false;
  };
  Streamed stream(std::vector<std::string> command, bool tty, std::vector<proto::ExecTaskStreamingRequest> inputs) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto call = stub_->ExecTaskStreaming(&ctx);
    proto::ExecTaskStreamingRequest setup;
    setup.mutable_setup()->set_task_id(task_id_);
    for (const auto& c : command) setup.mutable_setup()->add_command(c);
    setup.mutable_setup()->set_tty(tty);
    EXPECT_TRUE(call->Write(setup));
    for (const auto& in : inputs) EXPECT_TRUE(call->Write(in));
    Streamed got;
    proto::ExecTaskStreamingResponse r;
    while (!got.exited && call->Read(&r)) {
      got.out += r.stdout().data();
      got.err += r.stderr().data();
      if (r.exited()) got.exited = true, got.result = r.result();
    }
    call->WritesDone();
    EXPECT_TRUE(call->Finish().ok());
    return got;
  }
  static proto::ExecTaskStreamingRequest input(const std::string& data) {
    proto::ExecTaskStreamingRequest r;
    r.mutable_stdin()->set_data(data);
    return r;
  }

  Lifetime lifetime_;
  PluginState state_{[](const std::string&) {
    return DaemonLink{std::make_shared<LocalEnter>(), std::make_shared<NoFeed>()};
  }};
  DriverService driver_{state_, lifetime_};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<proto::Driver::Stub> stub_;
  std::string task_id_ = "a1/web/0001";
};

TEST_F(ExecThroughThePlugin, ReportsExecAsACapabilityWhenTheDaemonCanEnter) {
  grpc::ClientContext ctx;
  proto::CapabilitiesResponse caps;
  ASSERT_TRUE(stub_->Capabilities(&ctx, {}, &caps).ok());
  EXPECT_TRUE(caps.capabilities().exec());
}

TEST_F(ExecThroughThePlugin, ExecTaskReturnsOutputsAndTheExitCode) {
  proto::ExecTaskRequest req;
  req.set_task_id(task_id_);
  for (auto c : {"/bin/sh", "-c", "echo out; echo err >&2; kill -TERM $$"}) req.add_command(c);
  grpc::ClientContext ctx;
  proto::ExecTaskResponse resp;
  ASSERT_TRUE(stub_->ExecTask(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.stdout(), "out\n");
  EXPECT_EQ(resp.stderr(), "err\n");
  EXPECT_EQ(resp.result().exit_code(), 128 + SIGTERM);
  EXPECT_EQ(resp.result().signal(), SIGTERM);
}

TEST_F(ExecThroughThePlugin, ExecTaskGivesUpAtItsTimeout) {
  proto::ExecTaskRequest req;
  req.set_task_id(task_id_);
  for (auto c : {"/bin/sleep", "2"}) req.add_command(c);
  req.mutable_timeout()->set_nanos(100000000);
  grpc::ClientContext ctx;
  proto::ExecTaskResponse resp;
  auto status = stub_->ExecTask(&ctx, req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
}

TEST_F(ExecThroughThePlugin, StreamsStdinAndBothOutputsThroughPipes) {
  proto::ExecTaskStreamingRequest close;
  close.mutable_stdin()->set_close(true);
  auto got = stream({"/bin/sh", "-c", "read line; echo got:$line; echo e >&2; cat; exit 4"}, false,
                    {input("hello\n"), input("rest\n"), close});
  ASSERT_TRUE(got.exited);
  EXPECT_EQ(got.out, "got:hello\nrest\n");  // cat ends at the stdin close
  EXPECT_EQ(got.err, "e\n");
  EXPECT_EQ(got.result.exit_code(), 4);
}

TEST_F(ExecThroughThePlugin, GivesATtyItsSizeAndControllingTerminal) {
  proto::ExecTaskStreamingRequest size;
  size.mutable_tty_size()->set_height(30);
  size.mutable_tty_size()->set_width(100);
  auto got = stream({"/bin/sh", "-c", "read go; stty size; test -t 0 && echo tty"}, true, {size, input("go\n")});
  ASSERT_TRUE(got.exited);
  EXPECT_NE(got.out.find("30 100"), std::string::npos) << got.out;
  EXPECT_NE(got.out.find("tty"), std::string::npos) << got.out;
  EXPECT_EQ(got.result.exit_code(), 0);
}

TEST_F(ExecThroughThePlugin, RefusesAStreamWithoutSetupOrForAnUnknownTask) {
  grpc::ClientContext ctx;
  auto call = stub_->ExecTaskStreaming(&ctx);
  call->Write(input("x"));
  call->WritesDone();
  EXPECT_EQ(call->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext ctx2;
  proto::ExecTaskRequest req;
  req.set_task_id("nope");
  req.add_command("/bin/true");
  proto::ExecTaskResponse resp;
  EXPECT_EQ(stub_->ExecTask(&ctx2, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace runscope::nomad
