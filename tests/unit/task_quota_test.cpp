// [limits] at a start's admission (issue 12): the caller's use is counted under the registry lock,
// a refusal is ErrorKind::quota naming the limit, request and use, nothing of a refused start is
// made, and set_quotas (a reload) applies to the next start.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>

#include "common/error.hpp"
#include "daemon/task_manager.hpp"
#include "support/driver_fakes.hpp"
#include "support/paused_shims.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::uint64_t MiB = 1ull << 20;
const Caller kAlice{1001, 1001}, kBob{1002, 1002};

driver::TaskSpec spec_for(const std::string& task) {
  driver::TaskSpec s;
  s.alloc = "al";
  s.task = task;
  s.config = {{"command", "/bin/true"}};
  return s;
}

// tasks=2, cpu_weight=100, memory_max=64M (the ceiling), memory_total=150M, log_bytes=40M (the default log is 10M x 3).
std::shared_ptr<const quota::Quotas> site(std::uint64_t tasks = 2) {
  config::LimitsConfig c;
  c.defaults = config::LimitValues{tasks, 1, 100, 64 * MiB, 150 * MiB, 40 * MiB};
  return std::make_shared<const quota::Quotas>(c, quota::system_ids());
}

class AQuotaAtAdmission : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.state_dir = dir_.path();
    options_.cleanup_timeout = 200ms;
    options_.quotas = site();
    manager_ = std::make_unique<TaskManager>(backend_, nullptr, shims_, clock_, options_);
  }
  void TearDown() override { manager_->shutdown(false); }

  // The refusal of starting `spec` as `who`, or "" when it started.
  std::string refusal(const driver::TaskSpec& spec, const Caller& who) {
    try {
      manager_->start(spec, who);
      return "";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::quota) << e.what();
      return e.what();
    }
  }
  std::size_t task_folders() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_.path() / kTasksDir)) ++n;
    return n;
  }

  testing::TempDir dir_;
  testing::FakeBackend backend_;
  PausedShims shims_;
  SteadyClock clock_;
  ManagerOptions options_;
  std::unique_ptr<TaskManager> manager_;
};

TEST_F(AQuotaAtAdmission, RefusesAMembersTaskOverItsCountAndMakesNothingOfIt) {
  manager_->start(spec_for("a"), kAlice);
  manager_->start(spec_for("b"), kAlice);
  auto why = refusal(spec_for("c"), kAlice);
  EXPECT_THAT(why, HasSubstr("tasks"));
  EXPECT_THAT(why, HasSubstr("[limits]"));
  EXPECT_THAT(why, HasSubstr("2"));  // the limit and the use
  EXPECT_EQ(manager_->list(kAlice).size(), 2u);
  EXPECT_EQ(backend_.limits.size(), 2u);  // no cgroup for the refused one
  EXPECT_EQ(shims_.shims.size(), 2u);     // no shim
  EXPECT_EQ(task_folders(), 2u);          // no state
  EXPECT_EQ(refusal(spec_for("c"), kBob), "");  // bob's count is his own
  EXPECT_EQ(refusal(spec_for("r1"), Caller{}), "");  // root is unlimited
}

TEST_F(AQuotaAtAdmission, CountsOnlyTasksThatHaveNotEnded) {
  auto a = manager_->start(spec_for("a"), kAlice);
  manager_->start(spec_for("b"), kAlice);
  manager_->stop(a, 0s, kAlice);  // ended, not destroyed: it holds nothing
  EXPECT_EQ(refusal(spec_for("c"), kAlice), "");
}

TEST_F(AQuotaAtAdmission, RefusesAWeightAboveTheLimitAndGivesATaskWithoutMemoryMaxTheCeiling) {
  auto heavy = spec_for("heavy");
  heavy.resources.cpu_weight = 10000;
  EXPECT_THAT(refusal(heavy, kAlice), HasSubstr("cpu_weight 10000"));
  EXPECT_TRUE(manager_->list(kAlice).empty());
  manager_->start(spec_for("plain"), kAlice);
  ASSERT_EQ(backend_.limits.size(), 1u);
  EXPECT_EQ(backend_.limits[0].memory_max, 64 * MiB);
  EXPECT_EQ(manager_->inspect(TaskId("al", "plain"), kAlice).spec.resources.memory_max, 64 * MiB);
}

TEST_F(AQuotaAtAdmission, CountsTheMemoryItsTasksHoldAndTheLogsTheyMayWrite) {
  manager_->set_quotas(site(10));
  manager_->start(spec_for("first"), kAlice);   // 64M (the ceiling) of 150M
  manager_->start(spec_for("second"), kAlice);  // 128M
  auto why = refusal(spec_for("third"), kAlice);
  EXPECT_THAT(why, HasSubstr("memory_total"));
  EXPECT_THAT(why, HasSubstr("128"));  // the use
  auto small = spec_for("small");
  small.resources.memory_max = 20 * MiB;
  EXPECT_EQ(refusal(small, kAlice), "");
  auto logs = spec_for("logs");
  logs.log.target = driver::LogSpec::Target::file;
  logs.log.max_size = 1ull << 40;
  logs.log.max_files = 100;
  EXPECT_THAT(refusal(logs, kBob), HasSubstr("log_bytes"));
}

TEST_F(AQuotaAtAdmission, LetsOnlyTheAllowedNumberOfConcurrentStartsThrough) {
  manager_->set_quotas(site(3));
  std::vector<std::future<bool>> results;
  for (int i = 0; i < 12; ++i) {
    auto done = std::make_shared<std::promise<bool>>();
    results.push_back(done->get_future());
    auto spec = spec_for("t" + std::to_string(i));
    spec.resources.memory_max = MiB;  // only the task count binds
    manager_->start(SpecSource::of(spec), kAlice,
                    [done](Outcome<TaskId> outcome) { done->set_value(outcome.ok()); });
  }
  int started = 0;
  for (auto& r : results) {
    ASSERT_EQ(r.wait_for(30s), std::future_status::ready);
    started += r.get() ? 1 : 0;
  }
  EXPECT_EQ(started, 3);
  EXPECT_EQ(manager_->list(kAlice).size(), 3u);
}

TEST_F(AQuotaAtAdmission, AppliesNewLimitsToTheNextStart) {
  manager_->start(spec_for("a"), kAlice);
  manager_->set_quotas(site(1));
  EXPECT_THAT(refusal(spec_for("b"), kAlice), HasSubstr("tasks"));
  manager_->set_quotas(site(5));
  EXPECT_EQ(refusal(spec_for("b"), kAlice), "");
}

TEST_F(AQuotaAtAdmission, TellsAMemberANameHeldByAnotherIsUnavailableWithoutWhose) {
  manager_->start(spec_for("secret"), Caller{});
  auto clash = spec_for("secret");
  try {
    manager_->start(clash, kAlice);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
    EXPECT_THAT(e.what(), HasSubstr("unavailable"));
    EXPECT_THAT(e.what(), Not(HasSubstr("exists")));
    EXPECT_THAT(e.what(), Not(HasSubstr("task al/secret")));
  }
  auto sibling = spec_for("x");
  sibling.alloc = "al-secret";  // the cgroup name "al-secret-x" is free, but "al"/"secret-x"...
  manager_->start(spec_for("secret-x"), Caller{});
  try {
    manager_->start(sibling, kAlice);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("unavailable"));
    EXPECT_THAT(e.what(), Not(HasSubstr("al/secret-x")));
  }
  try {
    manager_->start(spec_for("secret"), Caller{});  // root is told what holds it
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("exists"));
  }
}

}  // namespace
}  // namespace runscope::daemon
