// The v1 cgroupfs backend against this host's real v1 hierarchies, under a relative parent so
// every folder (memory above all) nests beneath the test process's own cgroups.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup/host.hpp"
#include "cgroup/v1_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "support/held_child.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::HeldChild;

class AV1CgroupOnThisHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::is_root()) GTEST_SKIP() << "needs root to write cgroupfs";
    layout_ = driver::detect_layout();
    if (layout_.version() != Version::v1) GTEST_SKIP() << "this host runs cgroup v2 only";
    own_ = own_cgroups();
    parent_ = "runscope-test-" + std::to_string(::getpid()) + "-v1";
    tmp_ = fs::temp_directory_path() / ("runscope-v1-host-" + std::to_string(::getpid()));
    fs::create_directories(tmp_);
    testing::become_subreaper();
    backend_ = make_v1_backend(V1Options{layout_, own_, parent_, &clock_, CgroupFsOps::kernel(), "/proc"});
  }

  // Every folder the test made must be gone but the parent, which the test then removes.
  void TearDown() override {
    if (!backend_) return;
    testing::reap_zombies();
    for (const char* c : kV1TaskControllers) {
      if (!layout_.v1_mounts.count(c)) continue;
      auto base = layout_.v1_mounts.at(c) / fs::path(own_.at(c)).relative_path() / parent_;
      std::vector<fs::path> left;
      std::error_code ec;
      for (const auto& e : fs::recursive_directory_iterator(base, ec)) {
        if (e.is_directory()) left.push_back(e.path());
      }
      for (auto it = left.rbegin(); it != left.rend(); ++it) ::rmdir(it->c_str());
      ::rmdir(base.c_str());
      for (const auto& p : left) {
        if (p.filename() != "shared" && p.filename() != "reserved") ADD_FAILURE() << "a test left " << p;
      }
      EXPECT_FALSE(fs::exists(base)) << base;
    }
    for (pid_t pid : seen_) EXPECT_FALSE(testing::process_alive(pid)) << "pid " << pid << " survived";
    fs::remove_all(tmp_);
  }

  std::unique_ptr<TaskCgroup> create(const Limits& limits = {}) {
    return backend_->create(TaskId("t" + std::to_string(::getpid()), "task"), limits);
  }

  // Forks the script held, places it, releases it.
  std::unique_ptr<HeldChild> start(TaskCgroup& task, const std::string& script) {
    auto child = std::make_unique<HeldChild>(script);
    task.place(child->pid());
    child->release();
    return child;
  }

  void kill_with_no_survivors(TaskCgroup& task) {
    auto before = task.pids();
    seen_.insert(seen_.end(), before.begin(), before.end());
    task.kill_all(Deadline(clock_, 30s), KillMethod::automatic);
    EXPECT_TRUE(task.pids().empty());
    EXPECT_FALSE(task.populated());
  }

  SteadyClock clock_;
  HostLayout layout_;
  CgroupPaths own_;
  std::string parent_;
  fs::path tmp_;
  std::unique_ptr<Backend> backend_;
  std::vector<pid_t> seen_;
};

TEST_F(AV1CgroupOnThisHost, TheTasksFirstActSeesItsCgroupInEveryController) {
  auto task = create();
  auto out = tmp_ / "cgroup";
  auto child = start(*task, "cat /proc/self/cgroup > " + out.string());
  ASSERT_EQ(child->wait(), 0);
  auto seen = parse_proc_cgroup(read_file(out));
  auto name = "t" + std::to_string(::getpid()) + "-task";
  for (const char* c : kV1TaskControllers) {
    if (!layout_.v1_mounts.count(c)) continue;
    // Without CPUs of its own the task keeps the cpuset cgroup it was spawned from (ours).
    auto want = std::string(c) == "cpuset" ? own_.at(c) : (fs::path(own_.at(c)) / parent_ / name).string();
    EXPECT_EQ(seen[c], want) << c;
  }
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, ATaskWithCpusSeesItsOwnCpusetCgroupFromItsFirstAct) {
  if (!layout_.v1_mounts.count("cpuset")) GTEST_SKIP() << "no cpuset hierarchy";
  Limits limits;
  limits.cpuset = CpuSet::parse("0");
  auto task = create(limits);
  auto out = tmp_ / "cgroup";
  auto child = start(*task, "cat /proc/self/cgroup > " + out.string());
  ASSERT_EQ(child->wait(), 0);
  auto seen = parse_proc_cgroup(read_file(out));
  auto name = "t" + std::to_string(::getpid()) + "-task";
  for (const char* c : kV1TaskControllers) {
    if (!layout_.v1_mounts.count(c)) continue;
    EXPECT_EQ(seen[c], (fs::path(own_.at(c)) / parent_ / name).string()) << c;
  }
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, CpusetOneConfinesTheTaskAndItsChildren) {
  if (!layout_.v1_mounts.count("cpuset")) GTEST_SKIP() << "no cpuset hierarchy";
  Limits limits;
  limits.cpuset = CpuSet::parse("1");
  auto task = create(limits);
  auto out = tmp_ / "status";
  auto child = start(*task, "grep Cpus_allowed_list /proc/self/status > " + out.string() +
                                "; sh -c 'grep Cpus_allowed_list /proc/self/status' >> " + out.string());
  ASSERT_EQ(child->wait(), 0);
  EXPECT_EQ(read_file(out), "Cpus_allowed_list:\t1\nCpus_allowed_list:\t1\n");
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, KillsAForkStormWithNoSurvivors) {
  auto task = create();
  auto child = start(*task, "i=0; while [ $i -lt 400 ]; do sleep 300 & i=$((i+1)); done; wait");
  ASSERT_TRUE(testing::wait_until([&] { return task->pids().size() >= 150; }, 60s));
  kill_with_no_survivors(*task);
  child->wait();
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, KillsADoubleForkedSetsidDaemon) {
  auto task = create();
  auto child = start(*task, "(setsid sh -c 'sleep 300' &); exit 0");
  ASSERT_EQ(child->wait(), 0);
  ASSERT_TRUE(testing::wait_until([&] { return !task->pids().empty(); }, 10s));
  kill_with_no_survivors(*task);
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, KillsATaskThatIgnoresSigterm) {
  auto task = create();
  auto child = start(*task, "trap '' TERM; sleep 300");
  ASSERT_TRUE(testing::wait_until([&] { return task->pids().size() >= 2; }, 10s));
  for (pid_t pid : task->pids()) ::kill(pid, SIGTERM);
  EXPECT_FALSE(testing::wait_until([&] { return task->pids().size() < 2; }, 200ms));
  kill_with_no_survivors(*task);
  int status = child->wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, LimitsReadBack) {
  Limits limits;
  limits.memory_max = 64 << 20;
  limits.cpu_weight = 200;
  limits.pids_max = 100;
  auto task = create(limits);
  auto name = "t" + std::to_string(::getpid()) + "-task";
  auto dir = [&](const char* c) {
    return layout_.v1_mounts.at(c) / fs::path(own_.at(c)).relative_path() / parent_ / name;
  };
  EXPECT_EQ(trim(read_file(dir("memory") / v1file::kMemoryLimit)), std::to_string(64 << 20));
  EXPECT_EQ(trim(read_file(dir("cpu") / v1file::kCpuShares)), "2048");
  EXPECT_EQ(trim(read_file(dir("pids") / v1file::kPidsMax)), "100");
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, CountsCpuTimeAndMemoryAfterWork) {
  auto task = create();
  auto child = start(*task, "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done");
  ASSERT_EQ(child->wait(), 0);
  auto s = task->stats();
  EXPECT_GT((s.cpu_user + s.cpu_system).count(), 0);
  ASSERT_TRUE(s.memory_peak.has_value());
  EXPECT_GT(*s.memory_peak, 0u);
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, CountsAnOomKill) {
  Limits limits;
  limits.memory_max = 32 << 20;
  auto task = create(limits);
  auto child = start(*task, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}");
  int status = child->wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_GE(task->stats().oom_kills, 1u);
  task->destroy(Deadline(clock_, 10s));
}

TEST_F(AV1CgroupOnThisHost, SharedPartitionTasksJoinTheSharedCpuset) {
  if (!layout_.v1_mounts.count("cpuset")) GTEST_SKIP() << "no cpuset hierarchy";
  Limits limits;
  limits.partition = CpuPartition::shared;
  auto task = create(limits);
  auto out = tmp_ / "cgroup";
  auto child = start(*task, "cat /proc/self/cgroup > " + out.string());
  ASSERT_EQ(child->wait(), 0);
  auto seen = parse_proc_cgroup(read_file(out));
  EXPECT_EQ(seen["cpuset"], (fs::path(own_.at("cpuset")) / parent_ / "shared").string());
  task->destroy(Deadline(clock_, 10s));
}

// The backend caches the parent's cpuset for task folders; the kernel refusing the cached CPUs
// after the parent shrank makes it read them again rather than fail the create.
TEST_F(AV1CgroupOnThisHost, ATaskMadeAfterTheParentsCpusetShrankGetsTheNewCpus) {
  if (!layout_.v1_mounts.count("cpuset")) GTEST_SKIP() << "no cpuset hierarchy";
  // A reserved task made before the reconciler wrote its CPUs copies its folder's parent's.
  Limits reserved;
  reserved.partition = CpuPartition::reserved;
  auto first = create(reserved);
  auto base = layout_.v1_mounts.at("cpuset") / fs::path(own_.at("cpuset")).relative_path() / parent_ / "reserved";
  auto cpus = CpuSet::parse(trim(read_file(base / "cpuset.cpus")));
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs in " << base;
  first->destroy(Deadline(clock_, 10s));
  auto one = CpuSet::range(cpus.cpus().back(), cpus.cpus().back());
  write_file(base / "cpuset.cpus", one.to_string());
  auto second = create(reserved);
  auto dir = base / ("t" + std::to_string(::getpid()) + "-task");
  EXPECT_EQ(trim(read_file(dir / "cpuset.cpus")), one.to_string());
  auto out = tmp_ / "status";
  auto child = start(*second, "grep Cpus_allowed_list /proc/self/status > " + out.string());
  ASSERT_EQ(child->wait(), 0);
  EXPECT_EQ(read_file(out), "Cpus_allowed_list:\t" + one.to_string() + "\n");
  second->destroy(Deadline(clock_, 10s));
}

// The empty-cgroup short cut must not skip the kill while anything is left: a task whose main
// process exited but left a daemon behind is killed by destroy() and nothing survives.
TEST_F(AV1CgroupOnThisHost, DestroyAfterTheMainProcessExitedStillKillsWhatItLeft) {
  auto task = create();
  auto child = start(*task, "setsid sleep 300 & exit 0");
  ASSERT_EQ(child->wait(), 0);
  ASSERT_TRUE(testing::wait_until([&] { return !task->pids().empty(); }, 10s));
  auto left = task->pids();
  seen_.insert(seen_.end(), left.begin(), left.end());
  task->destroy(Deadline(clock_, 10s));
  testing::reap_zombies();
  for (pid_t pid : left) EXPECT_FALSE(testing::process_alive(pid)) << pid;
}

}  // namespace
}  // namespace runscope::cgroup
