// The real runscope-shim driven through the real launcher with a fake cgroup (no privileges): it
// asks for placement, runs the task, records its exit; reports a failed start with its error
// kind; and kills a held child when the daemon vanishes before placing it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/shim_launcher.hpp"
#include "driver/shim_protocol.hpp"
#include "support/driver_fakes.hpp"
#include "support/fake_journald.hpp"
#include "support/held_child.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

driver::ShimLaunch launch_of(std::vector<std::string> argv) {
  driver::ShimLaunch l;
  l.alloc = "a";
  l.task = "t";
  l.argv = std::move(argv);
  l.env = {"PATH=/usr/bin:/bin"};
  l.cwd = "/";
  l.max_size = 64;
  l.max_files = 2;
  return l;
}

void write_launch(const fs::path& dir, std::vector<std::string> argv) {
  write_file_atomic(dir / driver::kLaunchFile, driver::to_json_text(launch_of(std::move(argv))));
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

TEST(TheShim, JoinsItsSupervisorHomeBeforeItExecs) {
  testing::TempDir dir;
  write_launch(dir.path(), {"/bin/true"});
  auto state = std::make_shared<testing::FakeCgroupState>();
  state->with_home = true;
  state->home_files = {(dir.path() / "home-cpu").string(), (dir.path() / "home-memory").string()};
  testing::FakeTaskCgroup cg(state);
  SteadyClock clock;
  ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
  auto shim = launcher.launch(dir.path(), cg, Deadline(clock, 30s));
  for (const auto& f : state->home_files) EXPECT_EQ(read_file(f), "0") << f << ": the shim did not join it";
  EXPECT_EQ(state->placed, std::vector<pid_t>{shim.task_pid});
  ::waitpid(shim.pid, nullptr, 0);
}

TEST(TheShim, FailsTheStartNamingItsHomeWhenItCannotJoinIt) {
  testing::TempDir dir;
  write_launch(dir.path(), {"/bin/true"});
  auto state = std::make_shared<testing::FakeCgroupState>();
  state->with_home = true;
  state->home_files = {(dir.path() / "home").string()};
  state->home_flags = O_RDONLY;  // the child's write fails
  testing::FakeTaskCgroup cg(state);
  SteadyClock clock;
  ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
  try {
    launcher.launch(dir.path(), cg, Deadline(clock, 30s));
    FAIL() << "started a shim that could not join its home";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::system);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("could not join its supervisors' cgroup fake-home"));
  }
  EXPECT_TRUE(state->placed.empty()) << "the task was started anyway";
  EXPECT_FALSE(driver::read_exit_record(dir.path()));
}

TEST(TheShim, ReportsAStartFailureWithItsKindAndErrno) {
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
    EXPECT_EQ(e.error_number(), ENOENT) << e.what();  // the daemon names a memory limit by it
    EXPECT_THAT(e.what(), ::testing::HasSubstr("/nonexistent/program"));
  }
  EXPECT_FALSE(driver::read_exit_record(dir.path()));
}

TEST(AStartFailure, CrossesTheControlChannelWithItsKindErrnoAndMessage) {
  const Error sent(ErrorKind::resources, "cannot execute '/bin/true': Argument list too long", E2BIG);
  EXPECT_EQ(driver::format_start_failure(sent), "5:7 cannot execute '/bin/true': Argument list too long");
  const auto got = driver::parse_start_failure(driver::format_start_failure(sent));
  EXPECT_EQ(got.kind(), ErrorKind::resources);
  EXPECT_EQ(got.error_number(), E2BIG);
  EXPECT_STREQ(got.what(), sent.what());
}

TEST(AStartFailure, FromAShimThatSendsNoErrnoOrAnUnknownKindIsStillRead) {
  const auto old = driver::parse_start_failure("2 cannot execute 'x': No such file or directory");
  EXPECT_EQ(old.kind(), ErrorKind::not_found);
  EXPECT_EQ(old.error_number(), 0);
  EXPECT_STREQ(old.what(), "cannot execute 'x': No such file or directory");
  const auto odd = driver::parse_start_failure("99:x1 something");
  EXPECT_EQ(odd.kind(), ErrorKind::system);
  EXPECT_EQ(odd.error_number(), 0);
  EXPECT_STREQ(odd.what(), "something");
  EXPECT_EQ(driver::parse_start_failure("2:99999999999 big").error_number(), 0);  // not an errno
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

// The journal target: the shim never sends a line itself. A forwarder started as the task's user
// does (here nobody when the test runs as root), so the sender journald sees is the task's side.
TEST(TheShim, SendsJournalLinesThroughAForwarderRunningAsTheTasksUser) {
  testing::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);  // the forwarder, as nobody, reaches the socket inside
  testing::FakeJournald journald(dir.path() / "journal.sock");
  auto launch = launch_of({"/bin/sh", "-c", "echo one; echo two >&2; printf partial"});
  launch.journal = true;
  launch.journal_socket = journald.path().string();
  const uid_t uid = ::geteuid() == 0 ? 65534 : ::geteuid();
  if (::geteuid() == 0) launch.credentials = driver::Credentials{65534, 65534, {65534}};
  write_file_atomic(dir.path() / driver::kLaunchFile, driver::to_json_text(launch));
  auto state = std::make_shared<testing::FakeCgroupState>();
  testing::FakeTaskCgroup cg(state);
  SteadyClock clock;
  auto shim = ExecShimLauncher(RUNSCOPE_SHIM_BINARY).launch(dir.path(), cg, Deadline(clock, 30s));
  ASSERT_EQ(wait_shim(shim.pid), 0);
  auto entries = journald.receive(3, 10s);
  ASSERT_EQ(entries.size(), 3u);
  std::map<std::string, std::string> priority_of;
  for (const auto& e : entries) {
    priority_of[e.fields.at("MESSAGE")] = e.fields.at("PRIORITY");
    EXPECT_EQ(e.fields.at("SYSLOG_IDENTIFIER"), "runscope/t");
    EXPECT_EQ(e.fields.at("RUNSCOPE_ALLOC"), "a");
    EXPECT_EQ(e.fields.at("RUNSCOPE_TASK"), "t");
    EXPECT_EQ(e.uid, uid) << "the line must be the task user's";
    EXPECT_NE(e.pid, shim.pid) << "the shim itself sent a line";
    EXPECT_NE(e.pid, shim.task_pid);
  }
  EXPECT_EQ(priority_of, (std::map<std::string, std::string>{{"one", "6"}, {"two", "3"}, {"partial", "6"}}));
  EXPECT_EQ(state->placed, std::vector<pid_t>{shim.task_pid}) << "only the task goes through the daemon";
  EXPECT_FALSE(fs::exists(dir.path() / driver::kStdoutLog));
  auto exit = driver::read_exit_record(dir.path());
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->status, (driver::ExitStatus{false, 0}));
}

// A forwarder that cannot start fails the task's start, and the held task never runs. Here it
// cannot become the task's user: the shim runs unprivileged (as nobody when the test is root).
TEST(TheShim, FailsTheStartWhenTheForwarderCannotStart) {
  testing::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  auto attempt = [&]() -> std::string {
    auto launch = launch_of({"/bin/sh", "-c", "echo ran > " + (dir.path() / "ran").string()});
    launch.journal = true;
    launch.credentials = driver::Credentials{::geteuid() + 1, ::getegid(), {::getegid()}};
    write_file_atomic(dir.path() / driver::kLaunchFile, driver::to_json_text(launch));
    auto state = std::make_shared<testing::FakeCgroupState>();
    testing::FakeTaskCgroup cg(state);
    SteadyClock clock;
    try {
      ExecShimLauncher(RUNSCOPE_SHIM_BINARY).launch(dir.path(), cg, Deadline(clock, 30s));
      return "started";
    } catch (const Error& e) {
      return e.what();
    }
  };
  const std::string expected = "cannot start the journal forwarder of task t: cannot switch to ";
  if (::geteuid() != 0) {
    EXPECT_THAT(attempt(), ::testing::StartsWith(expected));
  } else {
    ::chmod(dir.path().c_str(), 0777);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)
        ::_exit(2);
      ::_exit(attempt().rfind(expected, 0) == 0 ? 0 : 1);
    }
    EXPECT_EQ(wait_shim(child), 0) << "1: not refused as expected; 2: could not drop to nobody";
  }
  EXPECT_FALSE(fs::exists(dir.path() / "ran")) << "the task ran without its forwarder";
  EXPECT_FALSE(driver::read_exit_record(dir.path()));
}

}  // namespace
}  // namespace runscope::daemon
