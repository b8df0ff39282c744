#include "runscoped/reload.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/clock.hpp"

namespace runscope::runscoped {
namespace {

using ::testing::HasSubstr;

// Remembers what it was told; enough for the planner's side of a reload.
class MemoryApplier final : public cpuset::Applier {
 public:
  std::string name() const override { return "memory"; }
  void prepare(const CpuSet&) override {}
  std::optional<CpuSet> read(const cpuset::Target& t) override {
    if (t.kind == cpuset::Target::Kind::shared) return shared;
    if (t.kind == cpuset::Target::Kind::reserved) return reserved;
    auto it = tasks.find(*t.task);
    return it == tasks.end() ? std::nullopt : std::optional<CpuSet>(it->second);
  }
  void write(const cpuset::Target& t, const CpuSet& cpus) override {
    if (t.kind == cpuset::Target::Kind::shared) shared = cpus;
    else if (t.kind == cpuset::Target::Kind::reserved) reserved = cpus;
    else tasks[*t.task] = cpus;
  }
  CpuSet shared, reserved;
  std::map<TaskId, CpuSet> tasks;
};

// Knows only root and uid 1000 ("alice").
class NoIds final : public quota::IdResolver {
 public:
  std::optional<uid_t> user(const std::string& n) const override {
    return n == "alice" ? std::optional<uid_t>(1000) : std::nullopt;
  }
  std::optional<gid_t> group(const std::string&) const override { return std::nullopt; }
};

class AReload : public ::testing::Test {
 protected:
  void SetUp() override {
    current_.cpuset.reservable_cores = CpuSet::parse("0-3");
    current_.source = "/etc/runscope/runscope.toml";
    next_ = current_;
    cpusets_.start();
  }
  ReloadTargets targets() {
    return {[this](const config::TaskConfig& t) { policy_ = t; }, [this](const std::string& l) { level_ = l; },
            &cpusets_, [this](std::shared_ptr<const quota::Quotas> q) { quotas_ = std::move(q); }, &ids_};
  }

  config::Config current_, next_;
  std::optional<config::TaskConfig> policy_;
  std::string level_;
  std::shared_ptr<const quota::Quotas> quotas_;
  NoIds ids_;
  MemoryApplier applier_;
  FakeClock clock_;
  cpuset::Cpusets cpusets_{cpuset::Planner(cpuset::Topology::synthetic(1, 4, 1), CpuSet::parse("0-3"), {}, 1),
                           applier_, clock_, std::chrono::seconds(30)};
};

TEST_F(AReload, HandsTheNewTaskSectionAndLogLevelToTheDaemon) {
  next_.task.denied_uids = {1234};
  next_.task.kill_signal = 9;
  next_.daemon.log_level = "debug";
  auto out = apply_reload(next_, current_, targets());
  ASSERT_TRUE(out.applied);
  ASSERT_TRUE(policy_);
  EXPECT_EQ(policy_->denied_uids, std::vector<uid_t>{1234});
  EXPECT_EQ(policy_->kill_signal, 9);
  EXPECT_EQ(level_, "debug");
  EXPECT_EQ(current_.task, next_.task);
  EXPECT_THAT(out.summary(), HasSubstr("[task]"));
}

TEST_F(AReload, ReplansTheCpusetsWithTheNewReservedCores) {
  next_.cpuset.reserved_cores = CpuSet::parse("3");
  auto out = apply_reload(next_, current_, targets());
  ASSERT_TRUE(out.applied) << out.refused;
  EXPECT_EQ(cpusets_.shared_pool().to_string(), "0-2");
  EXPECT_EQ(applier_.shared.to_string(), "0-2");
  EXPECT_EQ(current_.cpuset, next_.cpuset);
}

TEST_F(AReload, RefusesCpusetsThatCannotHoldTheReservationsAndChangesNothing) {
  auto held = cpusets_.reserve(TaskId("a", "t"), 2);
  next_.cpuset.reserved_cores = held;
  next_.task.denied_uids = {1234};
  auto before = current_;
  auto out = apply_reload(next_, current_, targets());
  EXPECT_FALSE(out.applied);
  EXPECT_THAT(out.summary(), HasSubstr("/etc/runscope/runscope.toml"));
  EXPECT_THAT(out.summary(), HasSubstr("a/t"));
  EXPECT_FALSE(policy_);  // all or nothing
  EXPECT_EQ(current_.task, before.task);
  EXPECT_EQ(current_.cpuset, before.cpuset);
  EXPECT_EQ(cpusets_.desired().tasks.at(TaskId("a", "t")), held);
}

TEST_F(AReload, HandsNewLimitsToTheDaemonForTheNextStart) {
  next_.limits.defaults.tasks = 3;
  next_.limits.users = {config::LimitOverride{"alice", config::LimitValues{{}, {}, 500, {}, {}, {}}, "f:3:1"}};
  auto out = apply_reload(next_, current_, targets());
  ASSERT_TRUE(out.applied) << out.refused;
  ASSERT_TRUE(quotas_);
  auto alice = quotas_->limits_for(quota::Caller{1000, {}});
  EXPECT_EQ(alice.tasks.value, 3u);
  EXPECT_EQ(alice.cpu_weight.value, 500u);
  EXPECT_EQ(current_.limits, next_.limits);
  EXPECT_THAT(out.summary(), HasSubstr("[limits]"));
}

TEST_F(AReload, RefusesLimitsNamingAnUnknownUserAndChangesNothing) {
  next_.limits.users = {config::LimitOverride{"mallory", config::LimitValues{1, {}, {}, {}, {}, {}}, "f:7:1"}};
  next_.task.denied_uids = {1234};
  auto before = current_;
  auto out = apply_reload(next_, current_, targets());
  EXPECT_FALSE(out.applied);
  EXPECT_THAT(out.summary(), HasSubstr("mallory"));
  EXPECT_FALSE(quotas_);
  EXPECT_FALSE(policy_);
  EXPECT_EQ(current_.limits, before.limits);
}

TEST_F(AReload, NamesWhatNeedsARestartAndKeepsItsRunningValue) {
  next_.cgroups.parent = "elsewhere.slice";
  next_.daemon.state_dir = "/elsewhere";
  auto out = apply_reload(next_, current_, targets());
  ASSERT_TRUE(out.applied);
  EXPECT_EQ(out.needs_restart, (std::vector<std::string>{"[cgroups]", "daemon.state_dir"}));
  EXPECT_THAT(out.summary(), HasSubstr("after a restart"));
  EXPECT_NE(current_.cgroups, next_.cgroups);
  EXPECT_NE(current_.daemon.state_dir, next_.daemon.state_dir);
}

TEST_F(AReload, SaysSoWhenNothingLiveChanged) {
  auto out = apply_reload(next_, current_, targets());
  EXPECT_TRUE(out.applied);
  EXPECT_TRUE(out.changed.empty());
  EXPECT_FALSE(policy_);
  EXPECT_EQ(out.summary(), "reloaded, nothing live changed");
}

}  // namespace
}  // namespace runscope::runscoped
