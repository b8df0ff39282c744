// The reconciler together with the real v1 cgroupfs backend (root, this host's hierarchies): the
// backend puts tasks into the partitions the reconciler keeps, under one relative parent per
// process (memory nests beneath our own memory cgroup), all removed in teardown.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "cgroup/host.hpp"
#include "cgroup/v1_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "cpuset/cgroupfs_applier.hpp"
#include "cpuset/cpusets.hpp"
#include "support/held_child.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::cpuset {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using runscope::testing::HeldChild;
using runscope::testing::cpus_allowed;

class TheCpusetsWithTheV1Backend : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!runscope::testing::is_root()) GTEST_SKIP() << "needs root to write cgroupfs";
    layout_ = driver::detect_layout();
    if (layout_.version() != cgroup::Version::v1 || !layout_.v1_mounts.count("cpuset"))
      GTEST_SKIP() << "needs a v1 cpuset hierarchy";
    if (!CpuSet::parse("0-1").is_subset_of(Topology::read().online())) GTEST_SKIP() << "needs CPUs 0 and 1";
    runscope::testing::become_subreaper();
    own_ = cgroup::own_cgroups();
    parent_ = "runscope-test-" + std::to_string(::getpid()) + "-cpuset-backend";
    backend_ = cgroup::make_v1_backend(cgroup::V1Options{layout_, own_, parent_, &clock_});
    auto dir = layout_.v1_mounts.at("cpuset") / fs::path(own_.at("cpuset")).relative_path() / parent_;
    applier_ = std::make_unique<CgroupfsApplier>(CgroupfsApplierOptions{dir, cgroup::Version::v1});
    cpusets_ = std::make_unique<Cpusets>(Planner(Topology::read(), CpuSet::parse("0-1"), {}, 1), *applier_, clock_,
                                         30s);
  }

  void TearDown() override {
    children_.clear();
    tasks_.clear();  // destructors kill and remove what is left
    runscope::testing::reap_zombies();
    for (const char* c : cgroup::kV1TaskControllers) {
      if (!layout_.v1_mounts.count(c)) continue;
      auto base = layout_.v1_mounts.at(c) / fs::path(own_.at(c)).relative_path() / parent_;
      std::vector<fs::path> left;
      std::error_code ec;
      for (const auto& e : fs::recursive_directory_iterator(base, ec))
        if (e.is_directory()) left.push_back(e.path());
      for (auto it = left.rbegin(); it != left.rend(); ++it) ::rmdir(it->c_str());
      ::rmdir(base.c_str());
      EXPECT_FALSE(fs::exists(base)) << base;
    }
  }

  // A shell (and the sleep it starts) placed by the backend before its first instruction.
  pid_t start(cgroup::TaskCgroup& task) {
    auto child = std::make_unique<HeldChild>("sleep 1000 & wait");
    task.place(child->pid());
    child->release();
    pid_t pid = child->pid();
    children_.push_back(std::move(child));
    EXPECT_TRUE(runscope::testing::wait_until([&] { return pids_of(task, pid).size() == 2; }, 10s))
        << "the shell's child never appeared in " << task.location();
    return pid;
  }

  std::vector<pid_t> pids_of(cgroup::TaskCgroup& task, pid_t shell) {
    std::vector<pid_t> out;  // the shared cpuset lists every shared task: keep this one's
    for (pid_t pid : task.pids()) {
      std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
      std::string line;
      std::getline(stat, line);
      auto paren = line.rfind(')');  // "pid (comm) STATE PPID ..."
      pid_t ppid = paren == std::string::npos ? 0 : std::atoi(line.c_str() + paren + 4);
      if (pid == shell || ppid == shell) out.push_back(pid);
    }
    return out;
  }

  SteadyClock clock_;
  cgroup::HostLayout layout_;
  cgroup::CgroupPaths own_;
  std::string parent_;
  std::unique_ptr<cgroup::Backend> backend_;
  std::unique_ptr<CgroupfsApplier> applier_;
  std::unique_ptr<Cpusets> cpusets_;
  std::vector<std::unique_ptr<HeldChild>> children_;
  std::vector<std::unique_ptr<cgroup::TaskCgroup>> tasks_;
};

TEST_F(TheCpusetsWithTheV1Backend, AgreeOnThePartitionsTheBackendPlacesTasksIn) {
  cpusets_->start();
  cgroup::Limits shared_limits;
  shared_limits.partition = cgroup::CpuPartition::shared;
  cpusets_->add_shared_task();
  tasks_.push_back(backend_->create(TaskId("alloc" + std::to_string(::getpid()), "web"), shared_limits));
  auto& web = *tasks_.back();
  pid_t web_shell = start(web);
  auto web_pids = pids_of(web, web_shell);
  ASSERT_EQ(web_pids.size(), 2u);
  for (pid_t pid : web_pids) EXPECT_EQ(cpus_allowed(pid), "0-1");

  TaskId db_id("alloc" + std::to_string(::getpid()), "db");
  CpuSet mine = cpusets_->reserve(db_id, 1);
  std::string other = (CpuSet::parse("0-1") - mine).to_string();
  for (pid_t pid : web_pids) EXPECT_EQ(cpus_allowed(pid), other);
  cgroup::Limits reserved_limits;
  reserved_limits.partition = cgroup::CpuPartition::reserved;
  reserved_limits.cpuset = mine;
  tasks_.push_back(backend_->create(db_id, reserved_limits));
  auto& db = *tasks_.back();
  start(db);
  for (pid_t pid : db.pids()) EXPECT_EQ(cpus_allowed(pid), mine.to_string());
  auto writes = cpusets_->counts().writes;
  cpusets_->reconcile_now();
  EXPECT_EQ(cpusets_->counts().writes, writes) << "the backend's cgroup disagreed with the plan";

  db.destroy(Deadline(clock_, 10s));  // the task leaves before its core returns
  cpusets_->release(db_id);
  for (pid_t pid : web_pids) EXPECT_EQ(cpus_allowed(pid), "0-1");
  web.destroy(Deadline(clock_, 10s));
  cpusets_->remove_shared_task();
}

}  // namespace
}  // namespace runscope::cpuset
