// A shared runscoped's promises on this host's real cgroupfs, with the real runscope-shim (issue
// 12): a member's executable is looked up as the member, logs and exit records are root's only,
// and a task's journal lines are sent from the task's own cgroups as the task's own user.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>

#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/shim_protocol.hpp"
#include "support/fake_journald.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;

// True when `path` can be opened for reading by nobody (tried in a forked child).
bool nobody_can_read(const fs::path& path) {
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0)
      ::_exit(2);
    ::_exit(::open(path.c_str(), O_RDONLY | O_CLOEXEC) >= 0 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 2) << "could not become nobody";
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

class AMembersTaskOnThisHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    testing::become_subreaper();
    env_ = testing::make_v1_env("ten");
    backend_ = env_.make_backend(clock_);
    launcher_ = std::make_unique<ExecShimLauncher>(RUNSCOPE_SHIM_BINARY);
    ManagerOptions options;
    options.state_dir = state_.path() / "state";
    manager_ =
        std::make_unique<TaskManager>(*backend_, nullptr, *launcher_, clock_, options, [](const std::string&) {});
    waiter_ = std::make_unique<testing::StateWaiter>(*manager_);
  }
  void TearDown() override {
    if (!backend_) return;
    waiter_.reset();
    manager_->shutdown(false);
    manager_.reset();
    testing::reap_zombies();
    EXPECT_THAT(env_.leftovers(), ::testing::IsEmpty());
    env_.remove_parent();
  }
  // The start's error as "KIND: message", or "started".
  std::string start_as_member(const driver::TaskSpec& spec) {
    try {
      auto id = manager_->start(spec, member_);
      waiter_->wait_final(id);
      return "started";
    } catch (const Error& e) {
      return std::string(to_string(e.kind())) + ": " + e.what();
    }
  }

  Caller member_{kNobody, kNobody};
  SteadyClock clock_;
  testing::TempDir state_, secret_;
  testing::V1Env env_;
  std::unique_ptr<cgroup::Backend> backend_;
  std::unique_ptr<ShimLauncher> launcher_;
  std::unique_ptr<TaskManager> manager_;
  std::unique_ptr<testing::StateWaiter> waiter_;
};

// Issue 12 point 5: with PATH naming a folder only root may read, a member used to get
// AccessDenied for a program there and NotFound for one that is not: a probe of root's files.
TEST_F(AMembersTaskOnThisHost, CannotTellARootOnlyProgramFromAMissingOne) {
  ::chmod(secret_.path().c_str(), 0700);
  std::ofstream(secret_.path() / "present") << "#!/bin/sh\necho ran\n";
  ::chmod((secret_.path() / "present").c_str(), 0755);
  auto spec_for = [&](const std::string& alloc, const std::string& program) {
    driver::TaskSpec spec;
    spec.alloc = alloc;
    spec.task = "probe";
    spec.config = {{"command", program}};
    spec.env = {{"PATH", secret_.path().string()}};
    return spec;
  };
  const std::string present = start_as_member(spec_for("p1", "present"));
  const std::string missing = start_as_member(spec_for("p2", "runscope-not-there"));
  EXPECT_EQ(present, "permission denied: cannot execute 'present': Permission denied");
  EXPECT_EQ(missing, "permission denied: cannot execute 'runscope-not-there': Permission denied");
  EXPECT_TRUE(manager_->list(Caller{}).empty()) << "a refused start left a task behind";
  // Root's own task, run as root, still finds it.
  auto id = manager_->start(spec_for("p3", "present"), Caller{});
  ASSERT_TRUE(waiter_->wait_final(id));
  EXPECT_EQ(manager_->inspect(id, Caller{}).exit_code, 0);
}

// Issue 12 point 2 (the shim's side): a member's logs and exit record are root's alone on disk.
TEST_F(AMembersTaskOnThisHost, HasLogsAndExitRecordOnlyRootCanRead) {
  auto spec = testing::shell_task("l1", "private", "echo secret-out; echo secret-err >&2");
  auto id = manager_->start(spec, member_);
  ASSERT_TRUE(waiter_->wait_final(id));
  auto logs = manager_->logs(id, member_);
  ASSERT_TRUE(logs.stdout_path && logs.stderr_path);
  fs::path dir = fs::path(*logs.stdout_path).parent_path();
  for (const fs::path& file : {fs::path(*logs.stdout_path), fs::path(*logs.stderr_path), dir / driver::kExitFile}) {
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << file;
    EXPECT_EQ(st.st_uid, 0u) << file;
    EXPECT_FALSE(nobody_can_read(file)) << file << " is readable by another user";
  }
  EXPECT_EQ(read_file(*logs.stdout_path), "secret-out\n");
}

// The journal forwarder on the real cgroupfs: it sits in exactly the task's cgroups (v1: every
// hierarchy the daemon placed the task in; v2: the folder the task was cloned into) and sends as
// the task's user, so journald would record the task's uid and unit, never the shim's.
class AJournalForwarderOnThisHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::is_root()) GTEST_SKIP() << "needs root to write cgroupfs and switch users";
    testing::become_subreaper();
    ::chmod(dir_.path().c_str(), 0755);
  }

  void runs_beside_the_task(cgroup::Backend& backend, const std::string& tag) {
    testing::FakeJournald journald(dir_.path() / "journal.sock");
    driver::ShimLaunch launch;
    launch.alloc = "fwd" + std::to_string(::getpid());
    launch.task = tag;
    launch.argv = {"/bin/sh", "-c", "echo from-" + tag + "; exec sleep 1000"};
    launch.env = {"PATH=/usr/bin:/bin"};
    launch.cwd = "/";
    launch.journal = true;
    launch.journal_socket = journald.path().string();
    launch.credentials = driver::Credentials{kNobody, kNobody, {kNobody}};
    write_file_atomic(dir_.path() / driver::kLaunchFile, driver::to_json_text(launch));
    auto cg = backend.create(TaskId(launch.alloc, launch.task), {});
    auto shim = ExecShimLauncher(RUNSCOPE_SHIM_BINARY).launch(dir_.path(), *cg, Deadline(clock_, 30s));
    auto entries = journald.receive(1, 10s);
    ASSERT_EQ(entries.size(), 1u);
    const auto& e = entries.front();
    EXPECT_EQ(e.fields.at("MESSAGE"), "from-" + tag);
    EXPECT_EQ(e.uid, kNobody);
    EXPECT_EQ(e.gid, kNobody);
    EXPECT_NE(e.pid, shim.pid);
    EXPECT_NE(e.pid, shim.task_pid);
    EXPECT_EQ(e.sender_cgroup, read_file("/proc/" + std::to_string(shim.task_pid) + "/cgroup"))
        << "the forwarder is not where the task is";
    EXPECT_NE(e.sender_cgroup, read_file("/proc/" + std::to_string(shim.pid) + "/cgroup"));
    EXPECT_THAT(cg->pids(), ::testing::UnorderedElementsAre(shim.task_pid, e.pid));
    cg->destroy(Deadline(clock_, 30s));
    int status = 0;
    ASSERT_EQ(::waitpid(shim.pid, &status, 0), shim.pid);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_FALSE(testing::process_alive(e.pid));
    auto exit = driver::read_exit_record(dir_.path());
    ASSERT_TRUE(exit);
    EXPECT_EQ(exit->status, (driver::ExitStatus{true, SIGKILL}));
  }

  SteadyClock clock_;
  testing::TempDir dir_;
};

TEST_F(AJournalForwarderOnThisHost, JoinsEveryV1HierarchyOfAPlacedTask) {
  if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
  auto env = testing::make_v1_env("fwd1");
  auto backend = env.make_backend(clock_);
  runs_beside_the_task(*backend, "v1");
  testing::reap_zombies();
  EXPECT_THAT(env.leftovers(), ::testing::IsEmpty());
  env.remove_parent();
}

TEST_F(AJournalForwarderOnThisHost, JoinsTheCgroup2FolderATaskWasClonedInto) {
  auto layout = cgroup::parse_mountinfo(cgroup::drop_shadowed_mounts(read_file("/proc/self/mountinfo")));
  if (layout.unified_mount.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  fs::path parent = "runscope-test-" + std::to_string(::getpid()) + "-fwd2";
  {
    auto backend = cgroup::make_v2_backend(cgroup::V2Options{layout.unified_mount, parent, &clock_,
                                                             cgroup::CgroupFsOps::kernel()});
    runs_beside_the_task(*backend, "v2");
  }
  testing::reap_zombies();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(layout.unified_mount / parent, ec)) ::rmdir(e.path().c_str());
  EXPECT_EQ(::rmdir((layout.unified_mount / parent).c_str()), 0) << "a task cgroup was left behind";
}

}  // namespace
}  // namespace runscope::daemon
