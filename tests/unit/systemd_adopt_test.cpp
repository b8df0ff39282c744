// SystemdBackend after a daemon restart, against a fake manager that keeps a table of loaded
// units: adopt() takes back a running scope of ours by its name, leaves dead, missing and foreign
// units alone, existing() lists every scope in our slices, and disown() lets a scope be.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "support/fake_cgroup_tree.hpp"
#include "support/held_child.hpp"
#include "systemd/scope_backend.hpp"

namespace runscope::systemd {
namespace {

namespace fs = std::filesystem;

class UnitTableManager final : public SystemdManager {
 public:
  struct Unit {
    std::string slice;
    std::string state = "active";
  };

  void start_transient_unit(const std::string& name, const std::vector<UnitProperty>&) override {
    throw BusError(kJobFailed, "this fake does not start units: " + name);
  }
  void stop_unit(const std::string& name) override {
    stops.push_back(name);
    units.erase(name);
  }
  void reset_failed_unit(const std::string& name) override { resets.push_back(name); }
  void set_unit_properties(const std::string&, bool, const std::vector<UnitProperty>&) override {}
  PropertyValue get_unit_property(const std::string& name, const std::string&, const std::string& property) override {
    auto it = units.find(name);
    if (it == units.end()) throw BusError(kNoSuchUnit, "Unit " + name + " not loaded.");
    if (property != "Slice") throw BusError(kUnknownProperty, property);
    return it->second.slice;
  }
  std::string control_group(const std::string& name) override {
    if (name.ends_with(".slice")) return "/" + name;
    auto it = units.find(name);
    return it == units.end() ? "" : "/" + it->second.slice + "/" + name;
  }
  std::optional<UnitStatus> unit_status(const std::string& name) override {
    auto it = units.find(name);
    if (it == units.end()) return std::nullopt;
    return UnitStatus{name, "loaded", it->second.state, "running"};
  }
  std::vector<UnitStatus> list_units_by_patterns(const std::vector<std::string>&,
                                                 const std::vector<std::string>&) override {
    std::vector<UnitStatus> out;
    for (const auto& [name, unit] : units)
      if (name.ends_with(".scope")) out.push_back({name, "loaded", unit.state, "running"});
    return out;
  }
  std::string version() override { return "252"; }

  std::map<std::string, Unit> units;
  std::vector<std::string> stops, resets;
};

class ARestartedSystemdBackend : public ::testing::Test {
 protected:
  ARestartedSystemdBackend() : mount_(tree_.add_v2({})), backend_(manager_, options()) {}

  SystemdBackendOptions options() {
    SystemdBackendOptions o;
    o.cgroup_root = mount_;
    o.proc_root = tree_.root() / "proc";
    o.clock = &clock_;
    return o;
  }
  // A scope an earlier daemon made, with its folder in the fake cgroup2 tree.
  void left_running(const std::string& unit, const std::string& slice, const std::string& state = "active") {
    manager_.units[unit] = {slice, state};
    tree_.make_cgroup(mount_ / slice / unit);
  }

  runscope::testing::FakeCgroupTree tree_;
  fs::path mount_;
  FakeClock clock_;
  UnitTableManager manager_;
  SystemdBackend backend_;
  // Both parts hold '-': nothing may be parsed out of the unit name.
  const TaskId id_{"alloc-1-x", "web-a"};
};

TEST_F(ARestartedSystemdBackend, AdoptsARunningScopeByItsNameAndKillsThenStopsItOnDestroy) {
  left_running(id_.unit_name(), "runscope.slice");
  auto cg = backend_.adopt(id_.cgroup_name(), cgroup::CpuPartition::none);
  EXPECT_EQ(cg->location(), "runscope.slice/alloc-1-x-web-a.scope");
  EXPECT_TRUE(manager_.stops.empty()) << "adopting changes nothing";
  const auto scope = mount_ / "runscope.slice" / id_.unit_name();
  tree_.write(scope / "cgroup.events", "populated 1\nfrozen 0\n");
  std::jthread emptier([&] {  // the fake kernel empties it once killed; joined even if destroy() throws
    runscope::testing::wait_until([&] { return tree_.read(scope / "cgroup.kill") == "1"; }, std::chrono::seconds(10));
    tree_.write(scope / "cgroup.events", "populated 0\nfrozen 0\n");
  });
  cg->destroy(Deadline(system_clock(), std::chrono::seconds(10)));
  emptier.join();
  EXPECT_EQ(tree_.read(scope / "cgroup.kill"), "1");
  EXPECT_EQ(manager_.stops, std::vector<std::string>{id_.unit_name()});
  cg.reset();
  EXPECT_EQ(manager_.stops.size(), 1U);
}

TEST_F(ARestartedSystemdBackend, AdoptsAReservedTasksScopeUnderTheReservedSliceAndReadsItsStats) {
  left_running(id_.unit_name(), "runscope-reserved.slice");
  tree_.write(mount_ / "runscope-reserved.slice" / id_.unit_name() / "cpu.stat", "usage_usec 30\nuser_usec 20\nsystem_usec 10\n");
  auto cg = backend_.adopt(id_.cgroup_name(), cgroup::CpuPartition::reserved);
  EXPECT_EQ(cg->location(), "runscope-reserved.slice/" + id_.unit_name());
  EXPECT_EQ(cg->stats().cpu_user, std::chrono::microseconds(20));
  cg->disown();
}

TEST_F(ARestartedSystemdBackend, LeavesTheScopeAndItsProcessesAloneWhenDisowned) {
  left_running(id_.unit_name(), "runscope.slice");
  auto cg = backend_.adopt(id_.cgroup_name(), cgroup::CpuPartition::none);
  cg->disown();
  cg.reset();
  EXPECT_TRUE(manager_.stops.empty());
  EXPECT_TRUE(manager_.resets.empty());
  EXPECT_EQ(tree_.read(mount_ / "runscope.slice" / id_.unit_name() / "cgroup.kill"), "");
}

TEST_F(ARestartedSystemdBackend, ReportsAMissingOrEndedScopeAsNotFound) {
  left_running("a-dead.scope", "runscope.slice", "failed");
  for (const char* name : {"a-missing", "a-dead"}) {
    try {
      backend_.adopt(name, cgroup::CpuPartition::none);
      FAIL() << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::not_found) << name;
      EXPECT_NE(std::string(e.what()).find(std::string(name) + ".scope"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(manager_.resets, std::vector<std::string>{"a-dead.scope"}) << "the dead scope's name is freed";
  EXPECT_TRUE(manager_.stops.empty());
}

TEST_F(ARestartedSystemdBackend, NeverAdoptsAScopeOfTheSameNameOutsideItsSlices) {
  left_running(id_.unit_name(), "user.slice");
  try {
    backend_.adopt(id_.cgroup_name(), cgroup::CpuPartition::none);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
    EXPECT_NE(std::string(e.what()).find("user.slice"), std::string::npos);
  }
  EXPECT_TRUE(manager_.stops.empty());
  EXPECT_TRUE(manager_.resets.empty());
}

TEST_F(ARestartedSystemdBackend, ListsEveryScopeInItsSlicesWithThePartitionItsSliceMeans) {
  left_running("a-plain.scope", "runscope.slice");
  left_running("a-shared.scope", "runscope-shared.slice");
  left_running("a-reserved.scope", "runscope-reserved.slice");
  left_running("session-1.scope", "user.slice");
  using P = cgroup::CpuPartition;
  std::vector<std::pair<std::string, P>> want = {
      {"a-plain", P::none}, {"a-reserved", P::reserved}, {"a-shared", P::shared}};
  EXPECT_EQ(backend_.existing(), want);
}

TEST_F(ARestartedSystemdBackend, RefusesANameThatCannotBeAScope) {
  EXPECT_THROW(backend_.adopt("", cgroup::CpuPartition::none), Error);
  EXPECT_THROW(backend_.adopt("a/b", cgroup::CpuPartition::none), Error);
}

}  // namespace
}  // namespace runscope::systemd
