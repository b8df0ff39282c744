// SystemdBackend's decisions against a fake SystemdManager and a fake cgroup2 tree: PIDFDs
// fallback, UnitExists handling, cleanup after a failed start, live AllowedCPUs.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <thread>

#include "common/file.hpp"
#include "support/fake_cgroup_tree.hpp"
#include "support/fake_systemd_manager.hpp"
#include "support/held_child.hpp"
#include "systemd/properties.hpp"
#include "systemd/scope_backend.hpp"

namespace runscope::systemd {
namespace {

namespace fs = std::filesystem;
using runscope::testing::FakeManager;

class ASystemdBackendWithAFakeManager : public ::testing::Test {
 protected:
  ASystemdBackendWithAFakeManager()
      : mount_(tree_.add_v2({})), manager_(tree_, mount_, tree_.root() / "proc") {
    options_.cgroup_root = mount_;
    options_.proc_root = tree_.root() / "proc";
    options_.clock = &clock_;
    manager_.pid_for_pidfd = ::getpid();
  }
  SystemdBackend backend() { return SystemdBackend(manager_, options_); }
  // The task's scope holds processes until killed: the fake kernel empties it once cgroup.kill is
  // written. Join the returned thread after destroy(); a jthread, so a destroy() that throws
  // does not leave it joinable (std::terminate).
  std::jthread populated_until_killed() {
    const auto scope = mount_ / "runscope.slice/alloc1-web.scope";
    tree_.write(scope / "cgroup.events", "populated 1\nfrozen 0\n");
    return std::jthread([this, scope] {
      runscope::testing::wait_until([&] { return tree_.read(scope / "cgroup.kill") == "1"; }, std::chrono::seconds(10));
      tree_.write(scope / "cgroup.events", "populated 0\nfrozen 0\n");
    });
  }

  runscope::testing::FakeCgroupTree tree_;
  fs::path mount_;
  FakeManager manager_;
  FakeClock clock_;
  SystemdBackendOptions options_;
  const TaskId id_{"alloc1", "web"};
};

TEST_F(ASystemdBackendWithAFakeManager, StartsTheScopeOnPlaceWithAPidfdFirst) {
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  EXPECT_TRUE(manager_.starts.empty()) << "systemd cannot make an empty scope: nothing before place()";
  cg->place(::getpid());
  ASSERT_EQ(manager_.starts.size(), 1U);
  EXPECT_EQ(manager_.starts[0].name, "alloc1-web.scope");
  EXPECT_NE(find_property(manager_.starts[0].props, "PIDFDs"), nullptr);
  EXPECT_EQ(cg->location(), "runscope.slice/alloc1-web.scope");
  EXPECT_EQ(b.pidfd_support(), SystemdBackend::PidfdSupport::supported);
}

TEST_F(ASystemdBackendWithAFakeManager, FallsBackToPidsWhenSystemdDoesNotKnowPidfdsAndRemembers) {
  manager_.start_errors.push_back(BusError(kPropertyReadOnly, "Cannot set property PIDFDs, or unknown property."));
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  cg->place(::getpid());
  ASSERT_EQ(manager_.starts.size(), 2U);
  EXPECT_EQ(find_property(manager_.starts[1].props, "PIDFDs"), nullptr);
  EXPECT_NE(find_property(manager_.starts[1].props, "PIDs"), nullptr);
  EXPECT_TRUE(b.pidfds_refused());

  auto cg2 = b.create(TaskId("alloc1", "db"), cgroup::Limits{});
  cg2->place(::getpid());
  ASSERT_EQ(manager_.starts.size(), 3U);
  EXPECT_EQ(find_property(manager_.starts[2].props, "PIDFDs"), nullptr);
}

TEST_F(ASystemdBackendWithAFakeManager, ResetsItsOwnFailedUnitAndRetriesOnce) {
  manager_.start_errors.push_back(BusError(kUnitExists, "Unit alloc1-web.scope already exists."));
  manager_.existing_state = "failed";
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  cg->place(::getpid());
  EXPECT_EQ(manager_.resets, std::vector<std::string>{"alloc1-web.scope"});
  EXPECT_EQ(manager_.starts.size(), 2U);
}

TEST_F(ASystemdBackendWithAFakeManager, GivesUpWhenTheUnitStillExistsAfterOneReset) {
  manager_.start_errors.push_back(BusError(kUnitExists, "exists"));
  manager_.start_errors.push_back(BusError(kUnitExists, "exists"));
  manager_.existing_state = "failed";
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  EXPECT_THROW(cg->place(::getpid()), BusError);
  EXPECT_EQ(manager_.starts.size(), 2U);
}

TEST_F(ASystemdBackendWithAFakeManager, RefusesAnActiveOrForeignUnitOfTheSameName) {
  // Ours but running: a process is in its cgroup.
  const auto running = mount_ / "runscope.slice/alloc1-web.scope";
  tree_.make_cgroup(running);
  tree_.write(running / "cgroup.events", "populated 1\nfrozen 0\n");
  manager_.existing_cgroup = "/runscope.slice/alloc1-web.scope";
  for (auto [state, slice] : {std::pair{"active", "runscope.slice"}, std::pair{"failed", "user.slice"},
                              std::pair{"active", "user.slice"}}) {
    manager_.start_errors = {BusError(kUnitExists, "exists")};
    manager_.existing_state = state;
    manager_.existing_slice = slice;
    manager_.resets.clear();
    manager_.stops.clear();
    auto b = backend();
    auto cg = b.create(id_, cgroup::Limits{});
    try {
      cg->place(::getpid());
      FAIL() << state << " " << slice;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::conflict);
      EXPECT_NE(std::string(e.what()).find("alloc1-web.scope"), std::string::npos);
    }
    EXPECT_TRUE(manager_.resets.empty()) << "someone else's unit is never reset";
    EXPECT_TRUE(manager_.stops.empty()) << "someone else's unit is never stopped";
  }
}

// What `runscope exec` leaves (await_stop off): a scope of ours, still active a moment after its
// last process ended, its StopUnit sent. A start of the same name stops it (nothing left to kill),
// resets it and starts again.
TEST_F(ASystemdBackendWithAFakeManager, StopsItsOwnActiveButEmptyScopeOfTheSameNameAndRetries) {
  for (const std::string cgroup : {"/runscope.slice/alloc1-web.scope", "/gone.scope", ""}) {
    if (cgroup == "/runscope.slice/alloc1-web.scope") tree_.make_cgroup(mount_ / "runscope.slice/alloc1-web.scope");
    manager_.start_errors = {BusError(kUnitExists, "exists")};
    manager_.existing_state = "active";
    manager_.existing_cgroup = cgroup;  // empty, removed already, or none
    manager_.stops.clear();
    manager_.resets.clear();
    manager_.starts.clear();
    auto b = backend();
    auto cg = b.create(id_, cgroup::Limits{});
    cg->place(::getpid());
    EXPECT_EQ(manager_.stops, std::vector<std::string>{"alloc1-web.scope"}) << "'" << cgroup << "'";
    EXPECT_EQ(manager_.resets, std::vector<std::string>{"alloc1-web.scope"}) << "'" << cgroup << "'";
    EXPECT_EQ(manager_.starts.size(), 2U) << "'" << cgroup << "'";
    cg->disown();
  }
}

TEST_F(ASystemdBackendWithAFakeManager, NamesTheUnitAndSystemdsReasonWhenAPropertyIsRefused) {
  manager_.start_errors.push_back(BusError("org.freedesktop.DBus.Error.InvalidArgs",
                                           "Value specified in CPUWeight is out of range"));
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  try {
    cg->place(::getpid());
    FAIL();
  } catch (const BusError& e) {
    EXPECT_EQ(e.name(), "org.freedesktop.DBus.Error.InvalidArgs");
    EXPECT_NE(std::string(e.what()).find("CPUWeight"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("alloc1-web.scope"), std::string::npos);
  }
  EXPECT_EQ(manager_.stops, std::vector<std::string>{"alloc1-web.scope"}) << "a failed start leaves nothing";
}

TEST_F(ASystemdBackendWithAFakeManager, StopsTheScopeWhenThePidDidNotLandInIt) {
  manager_.misplace = true;
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  EXPECT_THROW(cg->place(::getpid()), Error);
  EXPECT_EQ(manager_.stops, std::vector<std::string>{"alloc1-web.scope"});
  EXPECT_EQ(manager_.resets, std::vector<std::string>{"alloc1-web.scope"});
}

TEST_F(ASystemdBackendWithAFakeManager, ChangesAllowedCpusAtRuntimeAndNeverToEmpty) {
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  cg->place(::getpid());
  cg->set_cpuset(CpuSet::parse("1-2"));
  ASSERT_EQ(manager_.set_calls.size(), 1U);
  EXPECT_TRUE(manager_.set_calls[0].runtime);
  EXPECT_EQ(std::get<std::vector<std::uint8_t>>(manager_.set_calls[0].props.at(0).value),
            std::vector<std::uint8_t>{0x06});
  EXPECT_THROW(cg->set_cpuset(CpuSet{}), Error);
  EXPECT_EQ(manager_.set_calls.size(), 1U);
}

TEST_F(ASystemdBackendWithAFakeManager, KillsThroughTheScopesFolderThenStopsTheUnitOnDestroy) {
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  cg->place(::getpid());
  const auto scope = mount_ / "runscope.slice/alloc1-web.scope";
  std::jthread emptier = populated_until_killed();
  cg->destroy(Deadline(system_clock(), std::chrono::seconds(10)));
  emptier.join();
  EXPECT_EQ(tree_.read(scope / "cgroup.kill"), "1");
  EXPECT_EQ(manager_.stops, std::vector<std::string>{"alloc1-web.scope"});
  EXPECT_TRUE(manager_.resets.empty()) << "a stop that ended done leaves nothing to reset";
  cg.reset();
  EXPECT_EQ(manager_.stops.size(), 1U) << "destroy is idempotent; the destructor does nothing more";
}

TEST_F(ASystemdBackendWithAFakeManager, StopsAnEmptyScopeWithoutKillingIt) {
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  cg->place(::getpid());
  cg->destroy(Deadline(clock_, std::chrono::seconds(1)));
  EXPECT_NE(tree_.read(mount_ / "runscope.slice/alloc1-web.scope/cgroup.kill"), "1");
  EXPECT_EQ(manager_.stops, std::vector<std::string>{"alloc1-web.scope"});
}

TEST_F(ASystemdBackendWithAFakeManager, SendsAnEmptiedScopesStopWithoutWaitingWhenAwaitStopIsOff) {
  options_.await_stop = false;
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  cg->place(::getpid());
  const auto scope = mount_ / "runscope.slice/alloc1-web.scope";
  std::jthread emptier = populated_until_killed();
  cg->destroy(Deadline(system_clock(), std::chrono::seconds(10)));
  emptier.join();
  EXPECT_EQ(tree_.read(scope / "cgroup.kill"), "1") << "killed and emptied first";
  EXPECT_EQ(manager_.sent_stops, std::vector<std::string>{"alloc1-web.scope"});
  EXPECT_TRUE(manager_.stops.empty()) << "no wait for the stop job";
  cg.reset();
  EXPECT_EQ(manager_.sent_stops.size(), 1U);
}

TEST_F(ASystemdBackendWithAFakeManager, NeverLeavesAScopeWithProcessesInItToSystemd) {
  options_.await_stop = false;
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  cg->place(::getpid());
  const auto scope = mount_ / "runscope.slice/alloc1-web.scope";
  tree_.write(scope / "cgroup.events", "populated 1\nfrozen 0\n");  // and it stays so
  EXPECT_THROW(cg->destroy(Deadline(clock_, std::chrono::milliseconds(0))), Error);
  EXPECT_TRUE(manager_.sent_stops.empty()) << "a scope with processes left is never left to systemd unawaited";
  cg->disown();
}

TEST_F(ASystemdBackendWithAFakeManager, TakesTheScopesFolderFromWhereThePidLandedWithoutAsking) {
  auto b = backend();
  auto cg1 = b.create(TaskId("a", "one"), cgroup::Limits{});
  auto cg2 = b.create(TaskId("a", "two"), cgroup::Limits{});
  cg1->place(::getpid());
  cg2->place(::getpid());
  EXPECT_EQ(manager_.control_group_calls, 0) << "no round trip: /proc/PID/cgroup names the scope's folder";
  EXPECT_EQ(cg1->location(), "runscope.slice/a-one.scope");
}

TEST_F(ASystemdBackendWithAFakeManager, PutsSharedTasksUnderTheSharedSlice) {
  cgroup::Limits limits;
  limits.partition = cgroup::CpuPartition::shared;
  auto b = backend();
  auto cg = b.create(id_, limits);
  cg->place(::getpid());
  EXPECT_EQ(std::get<std::string>(find_property(manager_.starts[0].props, "Slice")->value), "runscope-shared.slice");
}

}  // namespace
}  // namespace runscope::systemd
