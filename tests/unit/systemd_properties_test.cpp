// The property list runscope sends with StartTransientUnit, without a bus.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "systemd/properties.hpp"

namespace runscope::systemd {
namespace {

using cgroup::CpuPartition;

TEST(ScopeProperties, CarryIdentitySliceDelegationAndCollectMode) {
  const TaskId id("alloc1", "web");
  auto props = scope_properties(id, cgroup::Limits{}, "runscope.slice", 42, std::nullopt);
  ASSERT_NE(find_property(props, "Slice"), nullptr);
  EXPECT_EQ(std::get<std::string>(find_property(props, "Slice")->value), "runscope.slice");
  EXPECT_EQ(std::get<std::string>(find_property(props, "Description")->value), "runscope task alloc1/web");
  EXPECT_EQ(std::get<std::vector<std::uint32_t>>(find_property(props, "PIDs")->value), std::vector<std::uint32_t>{42});
  EXPECT_EQ(find_property(props, "PIDFDs"), nullptr);
  EXPECT_TRUE(std::get<bool>(find_property(props, "Delegate")->value));
  EXPECT_FALSE(std::get<bool>(find_property(props, "DefaultDependencies")->value));
  EXPECT_EQ(std::get<std::string>(find_property(props, "CollectMode")->value), "inactive-or-failed");
  EXPECT_EQ(find_property(props, "MemoryMax"), nullptr);
  EXPECT_EQ(find_property(props, "AllowedCPUs"), nullptr);
}

TEST(ScopeProperties, UseAPidfdInsteadOfThePidWhenGivenOne) {
  auto props = scope_properties(TaskId("a", "t"), cgroup::Limits{}, "runscope.slice", 42, 7);
  EXPECT_EQ(std::get<PidFds>(find_property(props, "PIDFDs")->value), PidFds{{7}});
  EXPECT_EQ(find_property(props, "PIDs"), nullptr);
}

TEST(ScopeProperties, CarryEveryLimitThatIsSet) {
  cgroup::Limits limits;
  limits.memory_max = 512ULL << 20;
  limits.cpu_weight = 200;
  limits.pids_max = 64;
  limits.cpuset = CpuSet::parse("10-23");
  auto props = scope_properties(TaskId("a", "t"), limits, "runscope.slice", 1, std::nullopt);
  EXPECT_EQ(std::get<std::uint64_t>(find_property(props, "MemoryMax")->value), 512ULL << 20);
  EXPECT_EQ(std::get<std::uint64_t>(find_property(props, "CPUWeight")->value), 200U);
  EXPECT_EQ(std::get<std::uint64_t>(find_property(props, "TasksMax")->value), 64U);
  // CPU i is bit i%8 of byte i/8: 10-23 is bits 2-7 of byte 1 and all of byte 2 (runc PR #3611).
  EXPECT_EQ(std::get<std::vector<std::uint8_t>>(find_property(props, "AllowedCPUs")->value),
            (std::vector<std::uint8_t>{0x00, 0xFC, 0xFF}));
}

TEST(AllowedCpusProperty, IsNeverEmpty) {
  EXPECT_THROW(allowed_cpus_property(CpuSet{}), Error);
  EXPECT_EQ(std::get<std::vector<std::uint8_t>>(allowed_cpus_property(CpuSet::parse("0,9")).value),
            (std::vector<std::uint8_t>{0x01, 0x02}));
}

TEST(SliceFor, PutsPartitionsUnderTheParentInSystemdsDashHierarchy) {
  EXPECT_EQ(slice_for("runscope.slice", CpuPartition::none), "runscope.slice");
  EXPECT_EQ(slice_for("runscope.slice", CpuPartition::shared), "runscope-shared.slice");
  EXPECT_EQ(slice_for("runscope.slice", CpuPartition::reserved), "runscope-reserved.slice");
  EXPECT_EQ(slice_for("batch-jobs.slice", CpuPartition::shared), "batch-jobs-shared.slice");
}

TEST(SliceFor, RejectsANameThatIsNotASlice) {
  try {
    slice_for("/runscope", CpuPartition::none);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("/runscope"), std::string::npos);
  }
}

TEST(SupervisorNames, LiveInTheirOwnSliceUnderTheParent) {
  EXPECT_EQ(supervisor_slice_for("runscope.slice"), "runscope-supervisors.slice");
  EXPECT_EQ(supervisor_slice_for("batch-jobs.slice"), "batch-jobs-supervisors.slice");
  EXPECT_EQ(supervisors_scope_for("runscope.slice"), "runscope\\x2dsupervisors.scope");
  EXPECT_THROW(supervisor_slice_for("/runscope"), Error);
  EXPECT_THROW(supervisors_scope_for("/runscope"), Error);
}

// No task's scope can hold the supervisors' scope name: escaping never writes "\x2d" ('-' stays
// plain), whatever a hostile member calls a task.
TEST(SupervisorNames, CanNeverBeATasksScopeName) {
  for (const char* part : {"-", "x2d", "\\x2d", "\\", "runscope\\x2dsupervisors", "-supervisors", ".x2d",
                           "\xe2\x80\x94"}) {
    for (const auto& id : {TaskId(part, "t"), TaskId("runscope", part), TaskId(part, part)}) {
      EXPECT_EQ(id.cgroup_name().find("\\x2d"), std::string::npos) << id.cgroup_name();
      EXPECT_NE(id.unit_name(), supervisors_scope_for("runscope.slice"));
    }
  }
}

TEST(SupervisorsScopeProperties, DelegateWithoutATaskLimitAroundTheAnchor) {
  const auto props = supervisors_scope_properties("runscope-supervisors.slice", 42);
  EXPECT_EQ(std::get<std::string>(find_property(props, "Slice")->value), "runscope-supervisors.slice");
  EXPECT_EQ(std::get<std::vector<std::uint32_t>>(find_property(props, "PIDs")->value), std::vector<std::uint32_t>{42});
  EXPECT_TRUE(std::get<bool>(find_property(props, "Delegate")->value));
  EXPECT_EQ(std::get<std::uint64_t>(find_property(props, "TasksMax")->value), UINT64_MAX) << "one shim per task";
  EXPECT_EQ(std::get<std::string>(find_property(props, "CollectMode")->value), "inactive-or-failed");
}

}  // namespace
}  // namespace runscope::systemd
