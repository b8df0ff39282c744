// The cpuset reconciler against this machine's real v1 cpuset hierarchy (root only). Everything
// lives under a folder unique to this process, in the cpuset hierarchy alone (memory cgroups are
// never touched), and is removed in teardown, processes first.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>

#include "cgroup/host.hpp"
#include "cgroup/util.hpp"
#include "common/clock.hpp"
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

std::vector<pid_t> procs_of(const fs::path& dir) {
  auto text = read_file_if_exists(dir / "cgroup.procs");
  return text ? cgroup::cg_parse_pids(*text) : std::vector<pid_t>{};
}

class ACpusetOnV1 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!runscope::testing::is_root()) GTEST_SKIP() << "needs root to write the real cpuset hierarchy";
    auto layout = driver::detect_layout();
    if (layout.version() != cgroup::Version::v1 || !layout.v1_mounts.count("cpuset"))
      GTEST_SKIP() << "needs a v1 cpuset hierarchy";
    if (!CpuSet::parse("0-1").is_subset_of(Topology::read().online())) GTEST_SKIP() << "needs CPUs 0 and 1";
    runscope::testing::become_subreaper();  // the shells' children are reaped here when killed
    auto own = cgroup::own_cgroups();
    parent_ = layout.v1_mounts.at("cpuset") / fs::path(own.at("cpuset")).relative_path() /
              ("runscope-test-" + std::to_string(::getpid()) + "-cpuset");
    applier_ = std::make_unique<CgroupfsApplier>(CgroupfsApplierOptions{parent_, cgroup::Version::v1});
    cpusets_ = std::make_unique<Cpusets>(
        Planner(Topology::read(), CpuSet::parse("0-1"), {}, 1), *applier_, clock_, 30s);
  }

  void TearDown() override {
    children_.clear();  // SIGKILL + reap the shells
    for (const auto& dir : {parent_ / "reserved" / task_.cgroup_name(), parent_ / "reserved", parent_ / "shared",
                            parent_}) {
      if (dir.empty() || !fs::exists(dir)) continue;
      for (pid_t pid : procs_of(dir)) ::kill(pid, SIGKILL);  // only ours can be in our folders
      runscope::testing::wait_until(
          [&] {
            runscope::testing::reap_zombies();
            return procs_of(dir).empty();
          },
          10s);
      EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir << ": " << std::strerror(errno);
    }
  }

  // A shell in `dir` that has started a child of its own: both are returned.
  std::vector<pid_t> start_in(const fs::path& dir) {
    auto child = std::make_unique<HeldChild>("sleep 1000 & wait");
    write_file(dir / "cgroup.procs", std::to_string(child->pid()));
    auto before = procs_of(dir).size();  // counted while held, so its child can't be in it yet
    child->release();
    children_.push_back(std::move(child));
    EXPECT_TRUE(runscope::testing::wait_until([&] { return procs_of(dir).size() == before + 1; }, 10s))
        << "the shell's child never appeared in " << dir;
    return procs_of(dir);
  }

  void make_task_folder() {
    auto dir = parent_ / "reserved" / task_.cgroup_name();
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    write_file(dir / kMemsFile, trim(read_file(parent_ / kMemsFile)));
  }

  fs::path parent_;
  FakeClock clock_;
  std::unique_ptr<CgroupfsApplier> applier_;
  std::unique_ptr<Cpusets> cpusets_;
  std::vector<std::unique_ptr<HeldChild>> children_;
  TaskId task_{"runscope-test-" + std::to_string(::getpid()), "reserved"};
};

TEST_F(ACpusetOnV1, MovesSharedTasksAndTheirChildrenOffAReservedCoreAndBack) {
  cpusets_->start();
  auto shared = start_in(parent_ / "shared");
  ASSERT_EQ(shared.size(), 2u);
  cpusets_->add_shared_task();
  for (pid_t pid : shared) EXPECT_EQ(cpus_allowed(pid), "0-1") << pid;

  CpuSet mine = cpusets_->reserve(task_, 1);
  ASSERT_EQ(mine.size(), 1u);
  std::string other = (CpuSet::parse("0-1") - mine).to_string();
  for (pid_t pid : shared) EXPECT_EQ(cpus_allowed(pid), other) << "shared pid " << pid << " still on its old cores";

  make_task_folder();
  cpusets_->reconcile_now();  // the task's folder exists now: it gets its core
  auto reserved = start_in(parent_ / "reserved" / task_.cgroup_name());
  for (pid_t pid : reserved) EXPECT_EQ(cpus_allowed(pid), mine.to_string()) << "reserved pid " << pid;

  try {
    cpusets_->reserve(TaskId(task_.alloc(), "second"), 1);
    ADD_FAILURE() << "took the last shared core while a shared task runs";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resources);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("cannot reserve 1 core"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("0 free"));
  }
  for (pid_t pid : shared) EXPECT_EQ(cpus_allowed(pid), other) << "a refusal changed something";

  // The task leaves before its core returns.
  for (pid_t pid : reserved) ::kill(pid, SIGKILL);
  ASSERT_TRUE(runscope::testing::wait_until(
      [&] {
        runscope::testing::reap_zombies();
        return procs_of(parent_ / "reserved" / task_.cgroup_name()).empty();
      },
      10s));
  ASSERT_EQ(::rmdir((parent_ / "reserved" / task_.cgroup_name()).c_str()), 0);
  cpusets_->release(task_);
  for (pid_t pid : shared) EXPECT_EQ(cpus_allowed(pid), "0-1") << "shared pid " << pid << " did not get the core back";
}

TEST_F(ACpusetOnV1, PutsBackACpusetChangedByHand) {
  cpusets_->start();
  auto shared = start_in(parent_ / "shared");
  cpusets_->add_shared_task();
  CpuSet mine = cpusets_->reserve(task_, 1);
  std::string other = (CpuSet::parse("0-1") - mine).to_string();
  write_file(parent_ / "shared" / kCpusFile, "0-1");  // drift: someone gives the shared tasks both cores
  for (pid_t pid : shared) ASSERT_EQ(cpus_allowed(pid), "0-1");
  auto writes = cpusets_->counts().writes;
  cpusets_->reconcile_now();
  EXPECT_EQ(cpusets_->counts().writes - writes, 1u);
  EXPECT_EQ(trim(read_file(parent_ / "shared" / kCpusFile)), other);
  for (pid_t pid : shared) EXPECT_EQ(cpus_allowed(pid), other);
  writes = cpusets_->counts().writes;
  cpusets_->reconcile_now();
  EXPECT_EQ(cpusets_->counts().writes, writes) << "a matching cpuset was rewritten";
  cpusets_->release(task_);
}

TEST_F(ACpusetOnV1, RestartWritesNothingThatAlreadyMatches) {
  cpusets_->start();
  cpusets_->reserve(task_, 1);
  auto desired = cpusets_->desired();
  Cpusets again(Planner(Topology::read(), CpuSet::parse("0-1"), {}, 1), *applier_, clock_, 30s);
  again.restore(task_, desired.tasks.at(task_));
  again.start();
  EXPECT_EQ(again.counts().writes, 0u);
  again.release(task_);
}

}  // namespace
}  // namespace runscope::cpuset
