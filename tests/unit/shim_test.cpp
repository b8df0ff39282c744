// The real runscope-shim driven through the real launcher with a fake cgroup (no privileges): it
// asks for placement, runs the task, records its exit; reports a failed start with its error
// kind; and kills a held child when the daemon vanishes before placing it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/shim_launcher.hpp"
#include "driver/shim_protocol.hpp"
#include "support/driver_fakes.hpp"
#include "support/held_child.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

void write_launch(const fs::path& dir, std::vector<std::string> argv) {
  driver::ShimLaunch l;
  l.alloc = "a";
  l.task = "t";
  l.argv = std::move(argv);
  l.env = {"PATH=/usr/bin:/bin"};
  l.cwd = "/";
  l.max_size = 64;
  l.max_files = 2;
  write_file_atomic(dir / driver::kLaunchFile, driver::to_json_text(l));
}

unsigned mode_of(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

int wait_shim(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(TheShim, StartsTheTaskPlacedByTheDaemonAndRecordsItsExit) {
  testing::TempDir dir;
  write_launch(dir.path(), {"/bin/sh", "-c", "echo hello; exit 5"});
  auto state = std::make_shared<testing::FakeCgroupState>();
  testing::FakeTaskCgroup cg(state);
  SteadyClock clock;
  ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
  auto shim = launcher.launch(dir.path(), cg, Deadline(clock, 30s));
  EXPECT_EQ(state->placed, std::vector<pid_t>{shim.task_pid});
  EXPECT_NE(shim.start_time, 0u);
  int status = 0;
  ASSERT_EQ(::waitpid(shim.pid, &status, 0), shim.pid);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto exit = driver::read_exit_record(dir.path());
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->status, (driver::ExitStatus{false, 5}));
  EXPECT_EQ(exit->pid, shim.task_pid);
  EXPECT_EQ(read_file(dir.path() / driver::kStdoutLog), "hello\n");
}

TEST(TheShim, ReportsAStartFailureWithItsKind) {
  testing::TempDir dir;
  write_launch(dir.path(), {"/nonexistent/program"});
  testing::FakeTaskCgroup cg(std::make_shared<testing::FakeCgroupState>());
  SteadyClock clock;
  ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
  try {
    launcher.launch(dir.path(), cg, Deadline(clock, 30s));
    FAIL() << "started a program that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found) << e.what();
    EXPECT_THAT(e.what(), ::testing::HasSubstr("/nonexistent/program"));
  }
  EXPECT_FALSE(driver::read_exit_record(dir.path()));
}

TEST(TheShim, KillsAHeldChildWhenTheDaemonVanishesBeforePlacingIt) {
  testing::TempDir dir;
  write_launch(dir.path(), {"/bin/sleep", "1000"});
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd ours(sv[0]), theirs(sv[1]);
  std::string shim_path = RUNSCOPE_SHIM_BINARY, dir_arg = dir.path().string(), fd_arg = std::to_string(sv[1]);
  pid_t shim = ::fork();
  if (shim == 0) {
    ::fcntl(sv[1], F_SETFD, 0);
    ::execl(shim_path.c_str(), shim_path.c_str(), dir_arg.c_str(), fd_arg.c_str(), nullptr);
    ::_exit(127);
  }
  theirs.reset();
  auto request = driver::receive_message(ours.get());
  ASSERT_TRUE(request);
  ASSERT_THAT(*request, ::testing::StartsWith("place "));
  pid_t held = static_cast<pid_t>(std::stol(request->substr(6)));
  EXPECT_TRUE(testing::process_alive(held));
  ours.reset();  // the daemon is gone
  int status = 0;
  ASSERT_EQ(::waitpid(shim, &status, 0), shim);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_FALSE(testing::process_alive(held)) << "the held child outlived the shim";
  EXPECT_FALSE(driver::read_exit_record(dir.path()));
}

// Logs and the exit record are root's: a member reads its own through runscoped, never others'.
TEST(TheShim, WritesItsFilesForRootOnly) {
  testing::TempDir dir;
  write_launch(dir.path(), {"/bin/sh", "-c", "echo out; echo err >&2"});
  testing::FakeTaskCgroup cg(std::make_shared<testing::FakeCgroupState>());
  SteadyClock clock;
  auto shim = ExecShimLauncher(RUNSCOPE_SHIM_BINARY).launch(dir.path(), cg, Deadline(clock, 30s));
  ASSERT_EQ(wait_shim(shim.pid), 0);
  for (const char* file : {driver::kStdoutLog, driver::kStderrLog, driver::kExitFile})
    EXPECT_EQ(mode_of(dir.path() / file), 0600u) << file;
  EXPECT_EQ(read_file(dir.path() / driver::kStderrLog), "err\n");
}

}  // namespace
}  // namespace runscope::daemon
