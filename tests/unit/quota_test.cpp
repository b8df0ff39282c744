// The per-caller quotas ([limits]): which table decides each limit for a caller, and every
// refusal, table-driven, with messages that name the limit, where it is set, the request and use.
#include "quota/quota.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "common/error.hpp"

namespace runscope::quota {
namespace {

using ::testing::HasSubstr;
using config::LimitOverride;
using config::LimitValues;

constexpr std::uint64_t GiB = 1ull << 30, MiB = 1ull << 20;

class FakeIds final : public IdResolver {
 public:
  std::optional<uid_t> user(const std::string& name) const override { return find(users, name); }
  std::optional<gid_t> group(const std::string& name) const override { return find(groups, name); }
  std::map<std::string, unsigned> users{{"root", 0}, {"alice", 1000}, {"bob", 1001}};
  std::map<std::string, unsigned> groups{{"dev", 500}, {"ops", 501}, {"runscope", 400}};

 private:
  static std::optional<unsigned> find(const std::map<std::string, unsigned>& m, const std::string& name) {
    auto it = m.find(name);
    return it == m.end() ? std::nullopt : std::optional<unsigned>(it->second);
  }
};

// [limits] defaults tasks=4 reserved_cores=2 cpu_weight=100 memory_max=2G memory_total=4G
// log_bytes=100M; dev: more tasks and cores; ops: fewer tasks, more weight; alice: her own tasks.
config::LimitsConfig site() {
  config::LimitsConfig c;
  c.defaults = LimitValues{4, 2, 100, 2 * GiB, 4 * GiB, 100 * MiB};
  c.groups = {LimitOverride{"dev", LimitValues{8, 4, {}, {}, {}, {}}, "f:10:1"},
              LimitOverride{"ops", LimitValues{2, {}, 1000, {}, {}, {}}, "f:13:1"}};
  c.users = {LimitOverride{"alice", LimitValues{1, {}, {}, {}, {}, {}}, "f:16:1"}};
  return c;
}

Caller member(uid_t uid, std::vector<gid_t> gids = {400}) { return Caller{uid, std::move(gids)}; }

TEST(QuotaLimits, ComeFromTheUserThenTheMostGenerousGroupThenTheDefaults) {
  FakeIds ids;
  Quotas q(site(), ids);
  auto plain = q.limits_for(member(1001));
  EXPECT_EQ(plain.tasks, (Limit{4, "[limits]"}));
  EXPECT_EQ(plain.log_bytes, (Limit{100 * MiB, "[limits]"}));
  auto both = q.limits_for(member(1001, {400, 500, 501}));
  EXPECT_EQ(both.tasks, (Limit{8, "[limits.group.dev]"})) << "dev's 8 beats ops' 2";
  EXPECT_EQ(both.reserved_cores, (Limit{4, "[limits.group.dev]"}));
  EXPECT_EQ(both.cpu_weight, (Limit{1000, "[limits.group.ops]"}));
  EXPECT_EQ(both.memory_max, (Limit{2 * GiB, "[limits]"}));
  auto ops = q.limits_for(member(1001, {501}));
  EXPECT_EQ(ops.tasks, (Limit{2, "[limits.group.ops]"})) << "a group may also lower a default";
  auto alice = q.limits_for(member(1000, {500}));
  EXPECT_EQ(alice.tasks, (Limit{1, "[limits.user.alice]"})) << "her own table wins over her group";
  EXPECT_EQ(alice.reserved_cores, (Limit{4, "[limits.group.dev]"}));
}

TEST(QuotaLimits, LeaveRootUnlimitedUnlessItHasATableOfItsOwn) {
  FakeIds ids;
  auto config = site();
  Quotas q(config, ids);
  EXPECT_EQ(q.limits_for(Caller{0, {0, 500}}), Limits{}) << "neither the defaults nor root's groups apply";
  config.users.push_back(LimitOverride{"root", LimitValues{100, {}, {}, {}, {}, {}}, "f:20:1"});
  auto root = Quotas(config, ids).limits_for(Caller{0, {0}});
  EXPECT_EQ(root.tasks, (Limit{100, "[limits.user.root]"}));
  EXPECT_EQ(root.cpu_weight, Limit{});
}

TEST(QuotaLimits, HaveBoundedBuiltInDefaultsForMembers) {
  Quotas q;
  auto l = q.limits_for(member(1234));
  EXPECT_EQ(l.tasks.value, 64u);
  EXPECT_EQ(l.reserved_cores.value, 1u);
  EXPECT_EQ(l.cpu_weight.value, 100u);
  EXPECT_EQ(l.memory_max.value, kUnlimited);
  EXPECT_EQ(l.log_bytes.value, GiB);
  EXPECT_EQ(q.limits_for(Caller{0, {}}), Limits{});
}

TEST(QuotaLimits, ResolveNamesAndNumbersAndReportUnknownOnesWhereTheyAreWritten) {
  FakeIds ids;
  config::LimitsConfig c;
  c.users = {LimitOverride{"1002", LimitValues{7, {}, {}, {}, {}, {}}, "f:1:1"}};
  c.groups = {LimitOverride{"501", LimitValues{{}, 3, {}, {}, {}, {}}, "f:2:1"}};
  Quotas q(c, ids);
  EXPECT_EQ(q.limits_for(member(1002)).tasks.value, 7u);
  EXPECT_EQ(q.limits_for(member(1003, {501})).reserved_cores.value, 3u);

  struct Bad {
    config::LimitsConfig config;
    const char* message;
  };
  config::LimitsConfig unknown_user, unknown_group, twice;
  unknown_user.users = {LimitOverride{"alcie", {}, "/etc/r.toml:7:14"}};
  unknown_group.groups = {LimitOverride{"devs", {}, "/etc/r.toml:9:15"}};
  twice.users = {LimitOverride{"alice", {}, "/etc/r.toml:3:14"}, LimitOverride{"1000", {}, "/etc/r.toml:5:14"}};
  for (const auto& bad : {Bad{unknown_user, "/etc/r.toml:7:14: limits.user.alcie: no such user"},
                          Bad{unknown_group, "/etc/r.toml:9:15: limits.group.devs: no such group"},
                          Bad{twice, "/etc/r.toml:5:14: limits.user.1000: user 1000 already has limits at /etc/r.toml:3:14"}}) {
    try {
      Quotas(bad.config, ids);
      ADD_FAILURE() << "accepted: " << bad.message;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::config);
      EXPECT_STREQ(e.what(), bad.message);
    }
  }
}

struct Case {
  const char* name;
  Caller caller;
  Usage usage;
  Request request;
  const char* refused;  // the limit, or nullptr for ok
  const char* message;  // the whole message when refused
};

const Case kCases[] = {
    {"a first task", member(1001), {}, {}, nullptr, ""},
    {"the last task allowed", member(1001), {3, 0, 0}, {}, nullptr, ""},
    {"one task too many", member(1001), {4, 0, 0}, {}, "tasks",
     "uid 1001 is over its limit tasks = 4 (from [limits]): 4 tasks not yet ended, a start would make 5"},
    {"a group's tasks", member(1001, {500}), {4, 0, 0}, {}, nullptr, ""},
    {"alice over her own", member(1000, {500}), {1, 0, 0}, {}, "tasks",
     "uid 1000 is over its limit tasks = 1 (from [limits.user.alice]): 1 task not yet ended, a start would make 2"},
    {"cores within", member(1001), {1, 1, 0}, {1, {}, {}, false, 0, 0}, nullptr, ""},
    {"cores beyond", member(1001), {1, 1, 0}, {2, {}, {}, false, 0, 0}, "reserved_cores",
     "uid 1001 is over its limit reserved_cores = 2 (from [limits]): 1 core reserved, resources.cores 2 would make 3"},
    {"a shared task while all cores are held", member(1001), {1, 2, 0}, {}, nullptr, ""},
    {"the default weight", member(1001), {}, {0, 100, {}, false, 0, 0}, nullptr, ""},
    {"100x the weight", member(1001), {}, {0, 10000, {}, false, 0, 0}, "cpu_weight",
     "uid 1001 is over its limit cpu_weight = 100 (from [limits]): resources.cpu_weight 10000 is above it"},
    {"ops' weight", member(1001, {501}), {}, {0, 1000, {}, false, 0, 0}, nullptr, ""},
    {"memory within", member(1001), {1, 0, 2 * GiB}, {0, {}, 2 * GiB, false, 0, 0}, nullptr, ""},
    {"memory above the ceiling", member(1001), {}, {0, {}, 3 * GiB, false, 0, 0}, "memory_max",
     "uid 1001 is over its limit memory_max = 2G (from [limits]): resources.memory_max 3G is above it"},
    {"memory past the total", member(1001), {2, 0, 3 * GiB}, {0, {}, 2 * GiB, false, 0, 0}, "memory_total",
     "uid 1001 is over its limit memory_total = 4G (from [limits]): 3G of memory_max held by its tasks, "
     "resources.memory_max 2G would make 5G"},
    {"no memory_max counts the ceiling", member(1001), {2, 0, 3 * GiB}, {}, "memory_total",
     "uid 1001 is over its limit memory_total = 4G (from [limits]): 3G of memory_max held by its tasks, "
     "the default memory_max 2G would make 5G"},
    {"logs within", member(1001), {}, {0, {}, {}, true, 10 * MiB, 10}, nullptr, ""},
    {"1T x 100 of logs", member(1001), {}, {0, {}, {}, true, 1ull << 40, 100}, "log_bytes",
     "uid 1001 is over its limit log_bytes = 100M (from [limits]): log.max_size 1T x log.max_files 100 = "
     "100T is above it"},
    {"huge logs to the journal", member(1001), {}, {0, {}, {}, false, 1ull << 40, 100}, nullptr, ""},
    {"root past every default", Caller{0, {0}}, {1000, 64, 100 * GiB}, {8, 10000, 64 * GiB, true, 1ull << 40, 100},
     nullptr, ""},
};

TEST(QuotaCheck, AnswersEveryCaseWithTheNamedLimit) {
  FakeIds ids;
  Quotas q(site(), ids);
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    Decision d = q.check(c.caller, c.usage, c.request);
    if (!c.refused) {
      EXPECT_TRUE(d.ok()) << d.refusal->message;
      EXPECT_NO_THROW(d.enforce());
      continue;
    }
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.refusal->limit, c.refused);
    EXPECT_EQ(d.refusal->message, c.message);
    try {
      d.enforce();
      ADD_FAILURE() << "enforce() let it through";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::quota);
      EXPECT_EQ(e.what(), std::string(c.message));
    }
  }
}

TEST(QuotaCheck, GivesATaskWithoutMemoryMaxTheCallersCeiling) {
  FakeIds ids;
  Quotas q(site(), ids);
  EXPECT_EQ(q.check(member(1001), {}, {}).memory_max, 2 * GiB);
  EXPECT_EQ(q.check(member(1001), {}, {0, {}, MiB, false, 0, 0}).memory_max, MiB);
  EXPECT_EQ(q.check(Caller{0, {}}, {}, {}).memory_max, std::nullopt) << "root: no ceiling, none given";
}

TEST(QuotaCheck, RequiresMemoryMaxWhenOnlyATotalIsSet) {
  FakeIds ids;
  config::LimitsConfig c;
  c.defaults.memory_max = kUnlimited;
  c.defaults.memory_total = 8 * GiB;
  Decision d = Quotas(c, ids).check(member(1001), {1, 0, GiB}, {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.refusal->limit, "memory_total");
  EXPECT_THAT(d.refusal->message, HasSubstr("the task must set resources.memory_max"));
}

TEST(QuotaCheck, NeverOverflowsOnHugeRequestsOrUse) {
  FakeIds ids;
  Quotas q(site(), ids);
  const std::uint64_t max = kUnlimited;
  EXPECT_FALSE(q.check(member(1001), {max, max, max}, {max, max, max, true, max, max}).ok());
  EXPECT_EQ(q.check(member(1001), {0, 0, 0}, {0, {}, {}, true, max, 2}).refusal->limit, "log_bytes");
  EXPECT_EQ(q.check(member(1001, {500}), {0, max - 1, 0}, {2, {}, {}, false, 0, 0}).refusal->limit, "reserved_cores");
}

}  // namespace
}  // namespace runscope::quota
