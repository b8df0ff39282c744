// The v2 cgroupfs backend against the real kernel: a test sub-tree of this host's cgroup2 mount
// (on this hybrid machine /sys/fs/cgroup/unified, which has no controllers).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "cgroup/host.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "support/held_child.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::HeldChild;

class AV2CgroupOnThisHost : public ::testing::TestWithParam<KillMethod> {
 protected:
  void SetUp() override {
    if (!testing::is_root()) GTEST_SKIP() << "needs root to write cgroupfs";
    auto layout = driver::detect_layout();
    if (layout.unified_mount.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
    root_ = layout.unified_mount;
    parent_ = "runscope-test-" + std::to_string(::getpid()) + "-v2";
    testing::become_subreaper();
    backend_ = make_v2_backend(V2Options{root_, parent_, &clock_, CgroupFsOps::kernel()});
  }

  void TearDown() override {
    if (root_.empty()) return;
    testing::reap_zombies();
    std::vector<fs::path> left;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root_ / parent_, ec)) {
      if (e.is_directory()) left.push_back(e.path());
    }
    for (const auto& p : left) ::rmdir(p.c_str());
    ::rmdir((root_ / parent_).c_str());
    EXPECT_TRUE(left.empty()) << "a test left " << left.front();
    EXPECT_FALSE(fs::exists(root_ / parent_));
    for (pid_t pid : seen_) EXPECT_FALSE(testing::process_alive(pid)) << "pid " << pid << " survived";
  }

  std::unique_ptr<TaskCgroup> create(const Limits& limits = {}) {
    return backend_->create(TaskId("t" + std::to_string(::getpid()), "task"), limits);
  }

  void remember(const TaskCgroup& task) {
    auto now = task.pids();
    seen_.insert(seen_.end(), now.begin(), now.end());
  }

  SteadyClock clock_;
  fs::path root_;
  fs::path parent_;
  std::unique_ptr<Backend> backend_;
  std::vector<pid_t> seen_;
};

std::string proc_cgroup_v2_line(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

TEST_P(AV2CgroupOnThisHost, StartsAClonedChildInsideBeforeItsFirstInstruction) {
  auto task = create();
  auto tmp = fs::temp_directory_path() / ("runscope-v2-first-" + std::to_string(::getpid()));
  HeldChild child("cat /proc/self/cgroup > " + tmp.string(), task->clone_into_fd());
  auto expected = "/" + fs::path(task->location()).lexically_relative(root_).string();
  EXPECT_EQ(proc_cgroup_v2_line(child.pid()), expected);
  child.release();
  ASSERT_EQ(child.wait(), 0);
  auto text = read_file(tmp);
  fs::remove(tmp);
  EXPECT_NE(text.find("0::" + expected + "\n"), std::string::npos) << text;
  task->destroy(Deadline(clock_, 10s));
}

TEST_P(AV2CgroupOnThisHost, PlacesAHeldChild) {
  auto task = create();
  HeldChild child("exit 0");
  task->place(child.pid());
  EXPECT_EQ(task->pids(), std::vector<pid_t>{child.pid()});
  EXPECT_TRUE(task->populated());
  child.release();
  child.wait();
  task->destroy(Deadline(clock_, 10s));
}

TEST_P(AV2CgroupOnThisHost, KillsAForkStormWithNoSurvivors) {
  auto task = create();
  HeldChild child("i=0; while [ $i -lt 400 ]; do sleep 300 & i=$((i+1)); done; wait", task->clone_into_fd());
  child.release();
  ASSERT_TRUE(testing::wait_until([&] { return task->pids().size() >= 150; }, 60s));
  remember(*task);
  task->kill_all(Deadline(clock_, 30s), GetParam());
  EXPECT_TRUE(task->pids().empty());
  EXPECT_FALSE(task->populated());
  child.wait();
  task->destroy(Deadline(clock_, 10s));
}

TEST_P(AV2CgroupOnThisHost, KillsADoubleForkedSetsidDaemon) {
  auto task = create();
  HeldChild child("(setsid sh -c 'sleep 300' &); exit 0", task->clone_into_fd());
  child.release();
  ASSERT_EQ(child.wait(), 0);  // the main process is gone ...
  ASSERT_TRUE(testing::wait_until([&] { return !task->pids().empty(); }, 10s));  // ... its daemon is not
  remember(*task);
  task->kill_all(Deadline(clock_, 30s), GetParam());
  EXPECT_FALSE(task->populated());
  task->destroy(Deadline(clock_, 30s));
  EXPECT_FALSE(fs::exists(task->location()));
}

TEST_P(AV2CgroupOnThisHost, KillsATaskThatIgnoresSigterm) {
  auto task = create();
  HeldChild child("trap '' TERM; sleep 300", task->clone_into_fd());
  child.release();
  ASSERT_TRUE(testing::wait_until([&] { return task->pids().size() >= 2; }, 10s));
  remember(*task);
  for (pid_t pid : task->pids()) ::kill(pid, SIGTERM);
  EXPECT_FALSE(testing::wait_until([&] { return !testing::process_alive(seen_.back()); }, 200ms));
  task->kill_all(Deadline(clock_, 30s), GetParam());
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  task->destroy(Deadline(clock_, 10s));
}

TEST_P(AV2CgroupOnThisHost, CountsCpuTimeAfterWork) {
  auto task = create();
  HeldChild child("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done", task->clone_into_fd());
  child.release();
  ASSERT_EQ(child.wait(), 0);
  auto s = task->stats();
  EXPECT_GT((s.cpu_user + s.cpu_system).count(), 0);
  task->destroy(Deadline(clock_, 10s));
}

TEST_P(AV2CgroupOnThisHost, RefusesLimitsWhoseControllerIsMissingAndLeavesNothing) {
  auto offered = read_file_if_exists(root_ / "cgroup.controllers").value_or("");
  if (offered.find("memory") != std::string::npos) GTEST_SKIP() << "this host's cgroup2 offers memory";
  Limits limits;
  limits.memory_max = 64 << 20;
  try {
    create(limits);
    FAIL() << "expected unsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("'memory'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root_ / parent_));
}

INSTANTIATE_TEST_SUITE_P(BothKillMethods, AV2CgroupOnThisHost,
                         ::testing::Values(KillMethod::automatic, KillMethod::freeze),
                         [](const auto& info) { return info.param == KillMethod::freeze ? "Freeze" : "CgroupKill"; });

}  // namespace
}  // namespace runscope::cgroup
