// The spawner against the real kernel, without privileges: exit codes, signals, exec failures,
// environment, working directory, standard streams, and the hold-until-placed protocol.
#include <fcntl.h>
#include <grp.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "common/file.hpp"
#include "common/sanitizers.hpp"
#include "driver/credentials.hpp"
#include "driver/spawn.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::driver {
namespace {

using runscope::testing::FakeCgroupState;
using runscope::testing::FakeTaskCgroup;
using runscope::testing::TempDir;

class ACloneSpawner : public ::testing::Test {
 protected:
  SpawnSpec shell(const std::string& script) {
    SpawnSpec spec;
    spec.argv = {"sh", "-c", script};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.stdout_path = out_path();
    return spec;
  }
  std::filesystem::path out_path() const { return dir_.path() / "out"; }
  std::string output() const { return read_file_if_exists(out_path()).value_or(""); }
  ExitStatus run(const SpawnSpec& spec, cgroup::TaskCgroup* cg = nullptr) { return spawner_.spawn(spec, cg).reap(); }

  TempDir dir_;
  CloneSpawner spawner_;
};

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0; }

// Every child of this process, zombies included (a child stays listed until it is reaped), from
// each thread's /proc children list: unlike waitid(P_ALL), blind to the children other tests
// left running when the suite runs shuffled in one process.
std::set<pid_t> own_children() {
  std::set<pid_t> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::istringstream in(read_file_if_exists(task.path() / "children").value_or(""));
    for (pid_t pid; in >> pid;) out.insert(pid);
  }
  return out;
}

TEST_F(ACloneSpawner, ReportsTheExitCode) {
  auto status = run(shell("exit 3"));
  EXPECT_EQ(status, (ExitStatus{false, 3}));
  EXPECT_EQ(status.shell_code(), 3);
}

TEST_F(ACloneSpawner, ReportsADeathBySignalAs128PlusN) {
  auto status = run(shell("kill -KILL $$"));
  EXPECT_EQ(status, (ExitStatus{true, SIGKILL}));
  EXPECT_EQ(status.shell_code(), 137);
  EXPECT_EQ(status.describe(), "signal 9 (SIGKILL)");
}

TEST_F(ACloneSpawner, NamesAProgramMissingFromPathAndStartsNothing) {
  SpawnSpec spec = shell("");
  spec.argv = {"runscope-no-such-program"};
  try {
    spawner_.spawn(spec, nullptr);
    FAIL() << "spawn succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
    EXPECT_STREQ(e.what(), "cannot execute 'runscope-no-such-program': No such file or directory");
  }
}

TEST_F(ACloneSpawner, ReportsAnExecFailureFromTheChildAndReapsIt) {
  SpawnSpec spec = shell("");
  auto script = dir_.path() / "not-executable";
  std::ofstream(script) << "#!/bin/sh\n";
  ::chmod(script.c_str(), 0644);
  spec.argv = {script.string()};
  const auto before = own_children();
  try {
    spawner_.spawn(spec, nullptr);
    FAIL() << "spawn succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::permission);
    EXPECT_EQ(std::string(e.what()), "cannot execute '" + script.string() + "': Permission denied");
  }
  EXPECT_EQ(own_children(), before) << "a child was left unreaped";
}

TEST_F(ACloneSpawner, PassesExactlyTheGivenEnvironment) {
  SpawnSpec spec = shell("");
  spec.argv = {"env"};
  spec.env = {"PATH=/usr/bin:/bin", "RUNSCOPE_TEST=yes"};
  EXPECT_EQ(run(spec), (ExitStatus{false, 0}));
  EXPECT_EQ(output(), "PATH=/usr/bin:/bin\nRUNSCOPE_TEST=yes\n");
}

TEST_F(ACloneSpawner, RunsInTheGivenWorkingDirectory) {
  SpawnSpec spec = shell("pwd");
  spec.cwd = dir_.path();
  EXPECT_EQ(run(spec), (ExitStatus{false, 0}));
  EXPECT_EQ(output(), dir_.path().string() + "\n");
}

TEST_F(ACloneSpawner, NamesAMissingWorkingDirectory) {
  SpawnSpec spec = shell("true");
  spec.cwd = dir_.path() / "missing";
  try {
    spawner_.spawn(spec, nullptr);
    FAIL() << "spawn succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
    EXPECT_EQ(std::string(e.what()),
              "cannot change directory to '" + spec.cwd.string() + "' for 'sh': No such file or directory");
  }
}

TEST_F(ACloneSpawner, AppendsStdoutAndStderrToFiles) {
  SpawnSpec spec = shell("echo out; echo err >&2");
  spec.stderr_path = dir_.path() / "err";
  run(spec);
  run(spec);
  EXPECT_EQ(output(), "out\nout\n");
  EXPECT_EQ(read_file(dir_.path() / "err"), "err\nerr\n");
}

TEST_F(ACloneSpawner, GivesStdinFromDevNull) {
  EXPECT_EQ(run(shell("cat; echo done")), (ExitStatus{false, 0}));
  EXPECT_EQ(output(), "done\n");
}

TEST_F(ACloneSpawner, StartsInItsOwnSessionWithDefaultSignalsAndAnEmptyMask) {
  struct sigaction ignore{};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old{};
  ::sigaction(SIGUSR1, &ignore, &old);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  // The spawned program reads its own state: a shell in between would change its mask.
  SpawnSpec masks = shell("");
  masks.argv = {"grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"};
  Process first = spawner_.spawn(masks, nullptr);
  first.reap();
  SpawnSpec session = shell("");
  session.argv = {"cut", "-d", " ", "-f6", "/proc/self/stat"};
  Process second = spawner_.spawn(session, nullptr);
  ::sigaction(SIGUSR1, &old, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  second.reap();
  EXPECT_EQ(output(), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n" + std::to_string(second.pid()) + "\n");
}

TEST_F(ACloneSpawner, LeaksNoDescriptorIntoTheTask) {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  auto status = run(shell("test ! -e /proc/$$/fd/" + std::to_string(leaked)));
  ::close(leaked);
  EXPECT_EQ(status, (ExitStatus{false, 0}));
}

TEST_F(ACloneSpawner, HoldsTheChildUntilItIsPlaced) {
  auto state = std::make_shared<FakeCgroupState>();
  std::string exe_at_place;
  state->on_place = [&](pid_t pid) {
    exe_at_place = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe").string();
  };
  FakeTaskCgroup cg(state);
  EXPECT_EQ(run(shell("exit 0"), &cg), (ExitStatus{false, 0}));
  ASSERT_EQ(state->placed.size(), 1u);
  EXPECT_EQ(exe_at_place, std::filesystem::read_symlink("/proc/self/exe").string())
      << "the child ran something before it was placed";
}

// kcmp(2): 0 when both processes use the same memory.
bool shares_memory_with_us(pid_t pid) {
  return ::syscall(SYS_kcmp, ::getpid(), pid, KCMP_VM, 0, 0) == 0;
}

// A held child lives in the spawner's memory until its exec, in a vfork (spawn.cpp, ChildStarter),
// while the spawner goes on (it is placing the child here); sanitizer builds make a copy.
TEST_F(ACloneSpawner, LendsAHeldChildItsMemoryUntilItsExec) {
  auto state = std::make_shared<FakeCgroupState>();
  bool shared_at_place = false;
  state->on_place = [&](pid_t pid) { shared_at_place = shares_memory_with_us(pid); };
  FakeTaskCgroup cg(state);
  EXPECT_EQ(run(shell("exit 0"), &cg), (ExitStatus{false, 0}));
#if RUNSCOPE_SANITIZED
  EXPECT_FALSE(shared_at_place);
#else
  EXPECT_TRUE(shared_at_place);
#endif
  // Its exec gave it memory of its own: the task is never in ours.
  Process task = spawner_.spawn(shell("exec sleep 30"), nullptr);
  EXPECT_FALSE(shares_memory_with_us(task.pid()));
  task.signal(SIGKILL);
  task.reap();
}

TEST_F(ACloneSpawner, KillsAndReapsTheChildWhenPlacingFails) {
  auto state = std::make_shared<FakeCgroupState>();
  state->on_place = [](pid_t) { throw Error(ErrorKind::system, "placing failed"); };
  FakeTaskCgroup cg(state);
  EXPECT_THROW(spawner_.spawn(shell("echo ran"), &cg), Error);
  ASSERT_EQ(state->placed.size(), 1u);
  EXPECT_FALSE(process_exists(state->placed[0]));
  EXPECT_EQ(output(), "");
}

std::size_t mapping_count() {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

// Where it can, the child runs on a stack of its own in the spawner's memory until it execs
// (spawn.cpp, start_child): whatever became of it, that stack is unmapped again.
TEST_F(ACloneSpawner, LeavesNoMappingBehindWhateverBecameOfTheChild) {
  const auto not_executable = dir_.path() / "data";
  std::ofstream(not_executable) << "not a program\n";
  auto failing = std::make_shared<FakeCgroupState>();
  failing->on_place = [](pid_t) { throw Error(ErrorKind::system, "placing failed"); };
  auto each_fate = [&] {
    EXPECT_EQ(run(shell("exit 0")), (ExitStatus{false, 0}));
    SpawnSpec denied = shell("");
    denied.argv = {not_executable.string()};
    EXPECT_THROW(run(denied), Error);
    FakeTaskCgroup held(std::make_shared<FakeCgroupState>());
    EXPECT_EQ(run(shell("exit 0"), &held), (ExitStatus{false, 0}));
    FakeTaskCgroup refused(failing);
    EXPECT_THROW(run(shell("exit 0"), &refused), Error);
  };
  each_fate();  // whatever the first calls map for good (malloc's arenas, locale data)
  const std::size_t before = mapping_count();
  for (int i = 0; i < 10; ++i) each_fate();
  EXPECT_EQ(mapping_count(), before);
}

// Every signal is blocked in the calling thread while the child starts; the caller's own mask
// comes back.
TEST_F(ACloneSpawner, GivesTheCallerItsSignalMaskBack) {
  sigset_t usr1, before, after;
  ::sigemptyset(&usr1);
  ::sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &usr1, &before), 0);
  EXPECT_EQ(run(shell("exit 0")), (ExitStatus{false, 0}));
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &before, &after), 0);
  EXPECT_EQ(::sigismember(&after, SIGUSR1), 1);
  EXPECT_EQ(::sigismember(&after, SIGUSR2), 0);
}

// The v1 self-join: the child writes "0" to each of its cgroup's tasks files before exec, so the
// task's first act already finds them written; nothing is held and place() is never called.
TEST_F(ACloneSpawner, LetsTheChildJoinItsCgroupItselfBeforeExec) {
  auto state = std::make_shared<FakeCgroupState>();
  TempDir dir;
  state->join_files = {(dir.path() / "a").string(), (dir.path() / "b").string()};
  FakeTaskCgroup cg(state);
  EXPECT_EQ(run(shell("cat " + state->join_files[0] + " " + state->join_files[1]), &cg), (ExitStatus{false, 0}));
  EXPECT_EQ(output(), "00");
  EXPECT_TRUE(state->placed.empty());
}

TEST_F(ACloneSpawner, ReportsAChildThatCannotJoinItsCgroupAndRunsNothing) {
  auto state = std::make_shared<FakeCgroupState>();
  TempDir dir;
  state->join_files = {(dir.path() / "a").string()};
  state->join_flags = O_RDONLY;
  FakeTaskCgroup cg(state);
  try {
    spawner_.spawn(shell("echo ran"), &cg);
    FAIL() << "expected the join to fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot place 'sh' in its cgroup"), std::string::npos) << e.what();
  }
  EXPECT_EQ(output(), "");
}

TEST_F(ACloneSpawner, SwitchesToTheGivenUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  SpawnSpec spec = shell("id -u; id -g");
  spec.credentials = resolve_credentials("65534", std::string_view("65533"));
  EXPECT_EQ(run(spec), (ExitStatus{false, 0}));
  EXPECT_EQ(output(), "65534\n65533\n");
}

// An unprivileged spawner can't become another user: the child's setresuid fails and that must
// come back as an error, not as a task running with the wrong identity. As root, the spawner runs
// in a forked child that first drops to nobody, so the test runs the same way everywhere.
TEST_F(ACloneSpawner, ReportsAFailedUserSwitch) {
  auto attempt = [this] {
    SpawnSpec spec;
    spec.argv = {"true"};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.credentials = Credentials{::geteuid() + 1, ::getegid(), {::getegid()}};
    try {
      spawner_.spawn(spec, nullptr);
    } catch (const Error& e) {
      return std::string(e.what()).find("cannot switch to") != std::string::npos;
    }
    return false;
  };
  if (::geteuid() != 0) {
    EXPECT_TRUE(attempt());
    return;
  }
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    constexpr uid_t kNobody = 65534;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0)
      ::_exit(2);
    ::_exit(attempt() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the spawn succeeded; 2: could not drop to nobody";
}

TEST(ResolveCredentials, FindsRootByNameAndByNumber) {
  EXPECT_EQ(resolve_credentials("root").uid, 0u);
  EXPECT_EQ(resolve_credentials("0").gid, 0u);
}

TEST(ResolveCredentials, AcceptsAUidWithoutAPasswdEntry) {
  auto creds = resolve_credentials("4000123");
  EXPECT_EQ(creds.uid, 4000123u);
  EXPECT_EQ(creds.gid, 4000123u);
}

TEST(ResolveCredentials, NamesAMissingUserOrGroup) {
  EXPECT_THROW(
      {
        try {
          resolve_credentials("runscope-no-such-user");
        } catch (const Error& e) {
          EXPECT_STREQ(e.what(), "user 'runscope-no-such-user' does not exist");
          throw;
        }
      },
      Error);
  EXPECT_THROW(resolve_credentials("root", std::string_view("runscope-no-such-group")), Error);
}

TEST(ExecutableCandidates, AreEachPathEntryOfTheTaskEnvironmentInOrder) {
  EXPECT_EQ(executable_candidates("sh", {"PATH=/bin"}), std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(executable_candidates("sh", {"A=b", "PATH=/x::/y/"}),
            (std::vector<std::string>{"/x/sh", "./sh", "/y//sh"}));
  EXPECT_EQ(executable_candidates("./local", {"PATH=/bin"}), std::vector<std::string>{"./local"});
  EXPECT_EQ(executable_candidates("/abs/prog", {}), std::vector<std::string>{"/abs/prog"});
  EXPECT_EQ(executable_candidates("true", {}).size(), 6u) << "the default PATH";
  EXPECT_THROW(executable_candidates("", {}), Error);
}

// execvp's rules, applied in the child: a candidate that is not executable is remembered and the
// search goes on; it only decides the error when nothing later runs.
TEST_F(ACloneSpawner, SearchesOnPastACandidateItMayNotExecute) {
  auto denied = dir_.path() / "denied", allowed = dir_.path() / "allowed";
  std::filesystem::create_directories(denied);
  std::filesystem::create_directories(allowed);
  std::ofstream(denied / "prog") << "#!/bin/sh\necho denied\n";
  ::chmod((denied / "prog").c_str(), 0644);
  std::ofstream(allowed / "prog") << "#!/bin/sh\necho allowed\n";
  ::chmod((allowed / "prog").c_str(), 0755);
  SpawnSpec spec = shell("");
  spec.argv = {"prog"};
  spec.env = {"PATH=" + denied.string() + ":" + allowed.string()};
  EXPECT_EQ(run(spec), (ExitStatus{false, 0}));
  EXPECT_EQ(output(), "allowed\n");

  spec.env = {"PATH=" + denied.string() + ":" + (dir_.path() / "missing").string()};
  try {
    spawner_.spawn(spec, nullptr);
    FAIL() << "ran a program that is not executable";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::permission);
    EXPECT_STREQ(e.what(), "cannot execute 'prog': Permission denied");
  }
}

// The task's user searches its PATH: a folder only root may search answers "Permission denied"
// for a program that is there and for one that is not, so the two cannot be told apart.
TEST_F(ACloneSpawner, LooksUpThePathAsTheTasksUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  auto secret = dir_.path() / "root-only";
  std::filesystem::create_directories(secret);
  ::chmod(dir_.path().c_str(), 0755);
  ::chmod(secret.c_str(), 0700);
  std::ofstream(secret / "present") << "#!/bin/sh\necho ran\n";
  ::chmod((secret / "present").c_str(), 0755);
  std::ofstream(out_path()) << "";
  ::chmod(out_path().c_str(), 0666);
  auto attempt = [&](const std::string& program, Credentials creds) -> std::string {
    SpawnSpec spec = shell("");
    spec.argv = {program};
    spec.env = {"PATH=" + secret.string() + ":/usr/bin:/bin"};
    spec.credentials = std::move(creds);
    try {
      spawner_.spawn(spec, nullptr).reap();
      return "ran";
    } catch (const Error& e) {
      return std::string(to_string(e.kind())) + ": " + e.what();
    }
  };
  Credentials nobody{65534, 65534, {65534}};
  const std::string denied = "permission denied: cannot execute '";
  EXPECT_EQ(attempt("present", nobody), denied + "present': Permission denied");
  EXPECT_EQ(attempt("runscope-absent", nobody), denied + "runscope-absent': Permission denied");
  EXPECT_EQ(attempt("true", nobody), "ran") << "the search goes on past the folder it may not read";
  EXPECT_EQ(attempt("present", Credentials{0, 0, {0}}), "ran") << "root may";
  EXPECT_EQ(read_file(out_path()), "ran\n");
}

}  // namespace
}  // namespace runscope::driver
