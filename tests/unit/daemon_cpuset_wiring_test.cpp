// The daemon's cpuset wiring per manager and host (wiring/cpuset_wiring.hpp), and the v2
// cgroupfs path end to end on a fake cgroup2 tree: a TaskManager over the real v2 backend and the
// wired CgroupfsApplier, every cpuset write recorded in order with the folders that existed then.
#include "wiring/cpuset_wiring.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>

#include <condition_variable>
#include <mutex>

#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "cpuset/cgroupfs_applier.hpp"
#include "cpuset/cpusets.hpp"
#include "daemon/task_manager.hpp"
#include "driver/shim_protocol.hpp"
#include "support/driver_fakes.hpp"
#include "support/paused_shims.hpp"
#include "support/fake_cgroup_tree.hpp"

namespace runscope::daemon {
namespace {

using wiring::choose_cpuset_applier;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::FakeCgroupTree;

const cgroup::CgroupPaths kOwnAtRoot = {{cgroup::kUnifiedKey, "/"}};

config::Config cgroupfs_config() {
  config::Config cfg;
  cfg.cgroups.manager = config::ManagerChoice::cgroupfs;
  return cfg;
}

driver::ManagerDecision decide(const config::Config& cfg, const cgroup::HostLayout& layout) {
  return driver::choose_manager({cfg.cgroups.manager, false}, layout, [] { return false; });
}

TEST(TheDaemonCpusetWiring, PicksTheV2CgroupfsApplierUnderTheV2BackendsParentOnAUnifiedHost) {
  FakeCgroupTree tree;
  auto mount = tree.add_v2({"cpuset", "cpu", "memory", "pids"});
  auto cfg = cgroupfs_config();
  auto decision = decide(cfg, tree.layout());
  ASSERT_EQ(decision, (driver::ManagerDecision{driver::ManagerKind::cgroupfs, cgroup::Version::v2}));
  auto choice = choose_cpuset_applier(cfg, decision, nullptr, tree.layout(), {{cgroup::kUnifiedKey, "/sys.slice/x"}});
  ASSERT_NE(choice.applier, nullptr) << choice.off_reason;
  EXPECT_EQ(choice.applier->name(), "cgroupfs v2 at " + (mount / "sys.slice/x/runscope.slice").string());
}

TEST(TheDaemonCpusetWiring, AnchorsALeadingSlashParentAtTheCgroup2Root) {
  FakeCgroupTree tree;
  auto mount = tree.add_v2({"cpuset"});
  auto cfg = cgroupfs_config();
  cfg.cgroups.parent = "/tasks";
  auto choice = choose_cpuset_applier(cfg, decide(cfg, tree.layout()), nullptr, tree.layout(),
                                      {{cgroup::kUnifiedKey, "/sys.slice/x"}});
  ASSERT_NE(choice.applier, nullptr);
  EXPECT_EQ(choice.applier->name(), "cgroupfs v2 at " + (mount / "tasks").string());
}

TEST(TheDaemonCpusetWiring, TurnsCpusetsOffNamingTheFileWhenCgroup2LacksTheController) {
  FakeCgroupTree tree;
  auto mount = tree.add_v2({"memory", "pids"});
  auto cfg = cgroupfs_config();
  auto choice = choose_cpuset_applier(cfg, decide(cfg, tree.layout()), nullptr, tree.layout(), kOwnAtRoot);
  EXPECT_EQ(choice.applier, nullptr);
  EXPECT_EQ(choice.off_reason, "the cpuset controller is not available at " + (mount / "cgroup.controllers").string());
}

TEST(TheDaemonCpusetWiring, KeepsTheV1ApplierInTheCpusetHierarchy) {
  FakeCgroupTree tree;
  auto cpuset = tree.add_v1("cpuset", {"cpuset"});
  tree.add_v1("memory", {"memory"});
  auto cfg = cgroupfs_config();
  auto decision = decide(cfg, tree.layout());
  ASSERT_EQ(decision.version, cgroup::Version::v1);
  auto choice = choose_cpuset_applier(cfg, decision, nullptr, tree.layout(), {{"cpuset", "/a"}});
  ASSERT_NE(choice.applier, nullptr);
  EXPECT_EQ(choice.applier->name(), "cgroupfs v1 at " + (cpuset / "runscope").string());
}

TEST(TheDaemonCpusetWiring, SaysWhyWhenNoV1CpusetHierarchyIsMounted) {
  FakeCgroupTree tree;
  tree.add_v1("memory", {"memory"});
  auto cfg = cgroupfs_config();
  auto choice = choose_cpuset_applier(cfg, decide(cfg, tree.layout()), nullptr, tree.layout(), {});
  EXPECT_EQ(choice.applier, nullptr);
  EXPECT_THAT(choice.off_reason, HasSubstr("cpuset hierarchy"));
}

// Forwards to the wired applier and notes each write with whether the reserved task's folder
// existed at that moment, so the test sees the order the kernel would.
class RecordingApplier final : public cpuset::Applier {
 public:
  RecordingApplier(cpuset::Applier& real, fs::path watched) : real_(real), watched_(std::move(watched)) {}
  std::string name() const override { return real_.name(); }
  void prepare(const CpuSet& usable) override { real_.prepare(usable); }
  std::optional<CpuSet> read(const cpuset::Target& target) override { return real_.read(target); }
  void write(const cpuset::Target& target, const CpuSet& cpus) override {
    std::lock_guard lock(mutex_);
    log_.push_back(target.describe() + "=" + cpus.to_string() + (fs::exists(watched_) ? " (task folder present)" : ""));
    real_.write(target, cpus);
  }
  std::vector<std::string> log() const {
    std::lock_guard lock(mutex_);
    return log_;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    log_.clear();
  }

 private:
  cpuset::Applier& real_;
  fs::path watched_;
  mutable std::mutex mutex_;
  std::vector<std::string> log_;
};


driver::TaskSpec spec_for(const std::string& task, std::optional<unsigned> cores = std::nullopt) {
  driver::TaskSpec s;
  s.alloc = "al";
  s.task = task;
  s.config = {{"command", "/bin/true"}};
  s.resources.cores = cores;
  return s;
}

std::string cpus_of(const FakeCgroupTree& tree, const fs::path& dir) {
  return CpuSet::parse(tree.read(dir / cpuset::kCpusFile)).to_string();
}

class ADaemonOnV2Cgroupfs : public ::testing::Test {
 protected:
  void SetUp() override {
    auto choice = choose_cpuset_applier(cfg_, decide(cfg_, tree_.layout()), nullptr, tree_.layout(), kOwnAtRoot,
                                        tree_.ops());
    ASSERT_NE(choice.applier, nullptr) << choice.off_reason;
    wired_ = std::move(choice.applier);
    recorder_ = std::make_unique<RecordingApplier>(*wired_, parent_ / "reserved" / "al-db");
    cpusets_ = std::make_unique<cpuset::Cpusets>(
        cpuset::Planner(cpuset::Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1), *recorder_, clock_,
        std::chrono::hours(1));
    backend_ = cgroup::make_v2_backend({mount_, driver::v2_parent("runscope.slice", kOwnAtRoot), &clock_, tree_.ops()});
    options_.state_dir = dir_.path();
    options_.cleanup_timeout = 2s;
    manager_ = std::make_unique<TaskManager>(*backend_, cpusets_.get(), shims_, clock_, options_);
    sub_ = manager_->subscribe([this](const TaskId& id, const TaskEvent& e) {
      std::lock_guard lock(mutex_);
      seen_.emplace_back(id, e.state);
      cv_.notify_all();
    });
    cpusets_->start();
  }
  void TearDown() override {
    sub_.reset();
    if (manager_) manager_->shutdown(false);
  }
  bool wait_for(const TaskId& id, TaskState state) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] {
      return std::find(seen_.begin(), seen_.end(), std::make_pair(id, state)) != seen_.end();
    });
  }

  FakeCgroupTree tree_;
  fs::path mount_ = tree_.add_v2({"cpuset", "cpu", "memory", "pids"});
  fs::path parent_ = mount_ / "runscope.slice";
  config::Config cfg_ = cgroupfs_config();
  SteadyClock clock_;
  std::unique_ptr<cpuset::Applier> wired_;
  std::unique_ptr<RecordingApplier> recorder_;
  std::unique_ptr<cpuset::Cpusets> cpusets_;
  std::unique_ptr<cgroup::Backend> backend_;
  testing::TempDir dir_;
  PausedShims shims_;
  ManagerOptions options_;
  std::unique_ptr<TaskManager> manager_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<TaskId, TaskState>> seen_;
  std::unique_ptr<Subscription> sub_;
};

TEST_F(ADaemonOnV2Cgroupfs, MakesBothPartitionsWithCpusetHandedDownThePath) {
  for (const auto& level : {mount_, parent_, parent_ / "reserved"}) {
    EXPECT_EQ(tree_.read(level / cpuset::kSubtreeControlFile), "+cpuset") << level;
  }
  EXPECT_EQ(cpus_of(tree_, parent_ / "shared"), "0-3");
  EXPECT_EQ(cpus_of(tree_, parent_ / "reserved"), "0-3");
  EXPECT_THAT(recorder_->log(), ElementsAre("reserved partition=0-3", "shared partition=0-3"));
}

TEST_F(ADaemonOnV2Cgroupfs, PutsSharedAndReservedTasksInTheirPartitionsAndReturnsCoresAfterTheTaskLeft) {
  recorder_->clear();
  auto web = manager_->start(spec_for("web"), Caller{});
  ASSERT_TRUE(wait_for(web, TaskState::running));
  EXPECT_EQ(shims_.shims.at(0).cgroup, (parent_ / "shared" / "al-web").string());
  // A shared task's folder has no CPUs of its own: it follows the shared partition.
  EXPECT_EQ(tree_.read(parent_ / "shared" / "al-web" / cpuset::kCpusFile), "");

  auto db = manager_->start(spec_for("db", 1), Caller{});
  ASSERT_TRUE(wait_for(db, TaskState::running));
  EXPECT_EQ(shims_.shims.at(1).cgroup, (parent_ / "reserved" / "al-db").string());
  auto mine = CpuSet::parse(tree_.read(parent_ / "reserved" / "al-db" / cpuset::kCpusFile));
  EXPECT_EQ(mine.size(), 1u);
  EXPECT_EQ(cpus_of(tree_, parent_ / "shared"), (CpuSet::parse("0-3") - mine).to_string());
  EXPECT_EQ(cpus_of(tree_, parent_ / "reserved"), "0-3");

  shims_.end(1);
  ASSERT_TRUE(wait_for(db, TaskState::exited));
  EXPECT_FALSE(tree_.exists(parent_ / "reserved" / "al-db"));
  EXPECT_EQ(cpus_of(tree_, parent_ / "shared"), "0-3");
  // Shrink first (the task's folder did not exist yet, so only the partition), grow back only
  // once the task's folder was gone: no populated folder is ever left without a CPU.
  const auto rest = (CpuSet::parse("0-3") - mine).to_string();
  EXPECT_THAT(recorder_->log(), ElementsAre("shared partition=" + rest, "shared partition=0-3"));
  shims_.end(0);
  ASSERT_TRUE(wait_for(web, TaskState::exited));
  EXPECT_FALSE(tree_.exists(parent_ / "shared" / "al-web"));
}

TEST_F(ADaemonOnV2Cgroupfs, RefusesASecondReservationThatWouldEmptyTheSharedPoolAndMakesNothing) {
  auto web = manager_->start(spec_for("web"), Caller{});
  ASSERT_TRUE(wait_for(web, TaskState::running));
  recorder_->clear();
  EXPECT_THROW(manager_->start(spec_for("db", 4), Caller{}), Error);
  EXPECT_FALSE(tree_.exists(parent_ / "reserved" / "al-db"));
  EXPECT_EQ(cpus_of(tree_, parent_ / "shared"), "0-3");
  EXPECT_TRUE(recorder_->log().empty());
  shims_.end(0);
  ASSERT_TRUE(wait_for(web, TaskState::exited));
}

}  // namespace
}  // namespace runscope::daemon
