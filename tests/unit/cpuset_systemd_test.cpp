#include "cpuset/systemd_applier.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "cpuset/cpusets.hpp"

namespace runscope::cpuset {
namespace {

using systemd::PropertyValue;
using systemd::UnitProperty;

// Just enough of systemd's manager: units with an AllowedCPUs byte array. Like systemd 252,
// SetUnitProperties on a unit that is not loaded fails; units appear when started (or when the
// test says a scope backend made them). Counts bus calls.
class FakeManager final : public systemd::SystemdManager {
 public:
  void start_transient_unit(const std::string& name, const std::vector<UnitProperty>&) override {
    ++calls;
    if (units.count(name)) throw systemd::BusError(systemd::kUnitExists, "unit " + name + " exists");
    units[name] = {};
    started.push_back(name);
  }
  void stop_unit(const std::string&) override {}
  void reset_failed_unit(const std::string&) override {}
  void set_unit_properties(const std::string& name, bool runtime, const std::vector<UnitProperty>& props) override {
    ++calls;
    EXPECT_TRUE(runtime);
    if (!units.count(name)) throw systemd::BusError(systemd::kNoSuchUnit, "Unit " + name + " not loaded.");
    for (const auto& p : props) {
      ASSERT_EQ(p.name, "AllowedCPUs");
      units[name] = std::get<std::vector<std::uint8_t>>(p.value);
    }
    log.push_back(name);
  }
  PropertyValue get_unit_property(const std::string& name, const std::string& interface,
                                  const std::string& property) override {
    ++calls;
    EXPECT_EQ(property, "AllowedCPUs");
    EXPECT_EQ(interface, name.ends_with(".slice") ? kSliceInterface : kScopeInterface);
    auto it = units.find(name);
    if (it == units.end()) throw systemd::BusError(systemd::kNoSuchUnit, "no unit " + name);
    return it->second;
  }
  std::string control_group(const std::string&) override { return ""; }
  std::vector<systemd::UnitStatus> list_units_by_patterns(const std::vector<std::string>&,
                                                          const std::vector<std::string>&) override {
    return {};
  }
  std::optional<systemd::UnitStatus> unit_status(const std::string&) override { return std::nullopt; }
  std::string version() override { return "252"; }

  std::string cpus(const std::string& unit) const { return CpuSet::from_mask(units.at(unit)).to_string(); }

  std::map<std::string, std::vector<std::uint8_t>> units;
  std::vector<std::string> log;
  std::vector<std::string> started;
  int calls = 0;
};

Planner planner(const char* reservable) {
  return Planner(Topology::synthetic(1, 24, 1), CpuSet::parse(reservable), {}, 1);
}

TEST(ASystemdApplier, NamesTheSlicesByTheDashRule) {
  FakeManager bus;
  SystemdApplier a(bus, "runscope.slice");
  EXPECT_EQ(a.unit(Target::shared()), "runscope-shared.slice");
  EXPECT_EQ(a.unit(Target::reserved()), "runscope-reserved.slice");
  EXPECT_EQ(a.unit(Target::of(TaskId("a", "t"))), "a-t.scope");
  EXPECT_THROW(SystemdApplier(bus, "runscope"), Error);
}

TEST(ASystemdApplier, SetsBothSlicesAtStartAndTheirMasksReadBackExactly) {
  FakeManager bus;
  SystemdApplier a(bus, "runscope.slice");
  FakeClock clock;
  Cpusets c(planner("10-23"), a, clock, std::chrono::seconds(30));
  c.start();
  EXPECT_EQ(bus.started, (std::vector<std::string>{"runscope-shared.slice", "runscope-reserved.slice"}));
  EXPECT_EQ(bus.cpus("runscope-shared.slice"), "10-23");
  EXPECT_EQ(bus.cpus("runscope-reserved.slice"), "10-23");
  EXPECT_EQ(bus.units["runscope-shared.slice"], (std::vector<std::uint8_t>{0x00, 0xfc, 0xff}));
}

TEST(ASystemdApplier, ChangesTheSharedSliceAndTheOneScopeWhateverTheSharedTaskCount) {
  for (int shared : {1, 10, 1000}) {
    FakeManager bus;
    SystemdApplier a(bus, "runscope.slice");
    FakeClock clock;
    Cpusets c(planner("0-7"), a, clock, std::chrono::seconds(30));
    c.start();
    for (int i = 0; i < shared; ++i) c.add_shared_task();
    TaskId id("a", "t");
    bus.units[id.unit_name()] = {};  // the scope backend started the scope
    bus.log.clear();
    int calls = bus.calls;
    auto cpus = c.reserve(id, 2);
    EXPECT_EQ(bus.log, (std::vector<std::string>{"runscope-shared.slice", "a-t.scope"}));
    EXPECT_EQ(bus.cpus("a-t.scope"), cpus.to_string());
    EXPECT_EQ(bus.cpus("runscope-shared.slice"), (CpuSet::parse("0-7") - cpus).to_string());
    EXPECT_EQ(bus.calls - calls, 5) << "reads: reserved, shared, scope; writes: shared, scope";
    bus.units.erase(id.unit_name());  // the task is gone before its cores return
    c.release(id);
    EXPECT_EQ(bus.cpus("runscope-shared.slice"), "0-7");
  }
}

TEST(ASystemdApplier, PutsBackAnAllowedCpusChangedByHand) {
  FakeManager bus;
  SystemdApplier a(bus, "jobs.slice");
  FakeClock clock;
  Cpusets c(planner("0-3"), a, clock, std::chrono::seconds(30));
  c.start();
  bus.units["jobs-shared.slice"] = CpuSet::parse("0").to_mask();
  bus.log.clear();
  c.reconcile_now();
  EXPECT_EQ(bus.log, (std::vector<std::string>{"jobs-shared.slice"}));
  EXPECT_EQ(bus.cpus("jobs-shared.slice"), "0-3");
  bus.log.clear();
  c.reconcile_now();
  EXPECT_TRUE(bus.log.empty());
}

TEST(ASystemdApplier, StartsOnlyTheSlicesThatAreNotLoaded) {
  FakeManager bus;
  bus.units["runscope-shared.slice"] = CpuSet::parse("0-3").to_mask();
  SystemdApplier a(bus, "runscope.slice");
  a.prepare(CpuSet::parse("0-3"));
  EXPECT_EQ(bus.started, (std::vector<std::string>{"runscope-reserved.slice"}));
  a.prepare(CpuSet::parse("0-3"));
  EXPECT_EQ(bus.started.size(), 1u);
}

}  // namespace
}  // namespace runscope::cpuset
