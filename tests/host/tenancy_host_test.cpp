// A shared runscoped's promises on this host's real cgroupfs, with the real runscope-shim (issue
// 12): a member's executable is looked up as the member, logs and exit records are root's only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>

#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/shim_protocol.hpp"
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
    manager_ = std::make_unique<TaskManager>(*backend_, nullptr, *launcher_, clock_, options, [](const std::string&) {});
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

}  // namespace
}  // namespace runscope::daemon
