// SdbusSystemdManager against the real contained systemd and its real system bus.
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "systemd/contained.hpp"
#include "systemd/properties.hpp"
#include "systemd/sdbus_manager.hpp"

namespace runscope::systemd {
namespace {

using runscope::systemd_testing::AfterRelease;
using runscope::systemd_testing::HeldChild;
using runscope::systemd_testing::unique_name;
using runscope::systemd_testing::unified_line;

std::set<int> socket_fds() {
  std::set<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    struct stat st {};
    const int fd = std::stoi(entry.path().filename());
    if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) fds.insert(fd);
  }
  return fds;
}

std::vector<UnitProperty> minimal_scope(pid_t pid) {
  return {{"Slice", PropertyValue(std::string(kDefaultSlice))},
          {"PIDs", PropertyValue(std::vector<std::uint32_t>{static_cast<std::uint32_t>(pid)})},
          {"CollectMode", PropertyValue(std::string("inactive-or-failed"))}};
}

TEST(ASdbusSystemdManager, ReportsTheSystemdVersion) {
  RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
  SdbusSystemdManager manager;
  EXPECT_GE(std::stoi(manager.version()), 244);
}

TEST(ASdbusSystemdManager, StartsAScopeAndReturnsOnlyOnceItsJobIsDone) {
  RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
  SdbusSystemdManager manager;
  HeldChild child(AfterRelease::report_then_pause);
  const auto unit = unique_name("mgr") + ".scope";
  manager.start_transient_unit(unit, minimal_scope(child.pid()));
  auto units = manager.list_units_by_patterns({}, {unit});
  ASSERT_EQ(units.size(), 1U);
  EXPECT_EQ(units[0].active_state, "active");
  EXPECT_EQ(manager.control_group(unit), "/runscope.slice/" + unit);
  ASSERT_TRUE(manager.unit_status(unit).has_value());
  EXPECT_EQ(manager.unit_status(unit)->sub_state, "running");
  child.release();
  EXPECT_EQ(unified_line(child.first_report()), "/runscope.slice/" + unit);
  manager.stop_unit(unit);
  EXPECT_TRUE(runscope::systemd_testing::eventually([&] { return manager.list_units_by_patterns({}, {unit}).empty(); }));
}

TEST(ASdbusSystemdManager, StoppingAnUnknownUnitIsNotAnError) {
  RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
  SdbusSystemdManager manager;
  EXPECT_NO_THROW(manager.stop_unit(unique_name("absent") + ".scope"));
  EXPECT_NO_THROW(manager.reset_failed_unit(unique_name("absent") + ".scope"));
  EXPECT_FALSE(manager.unit_status(unique_name("absent") + ".scope").has_value());
}

TEST(ASdbusSystemdManager, ReportsAMissingUnitAsNoSuchUnit) {
  RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
  SdbusSystemdManager manager;
  try {
    manager.control_group(unique_name("absent") + ".scope");
    FAIL() << "expected NoSuchUnit";
  } catch (const BusError& e) {
    EXPECT_EQ(e.name(), kNoSuchUnit);
  }
}

TEST(ASdbusSystemdManager, ReconnectsAndRetriesAfterTheBusConnectionIsCut) {
  RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
  const auto before = socket_fds();
  SdbusSystemdManager manager;
  auto added = socket_fds();
  for (int fd : before) added.erase(fd);
  ASSERT_EQ(added.size(), 1U) << "expected exactly one new socket: the bus connection";
  ASSERT_EQ(::shutdown(*added.begin(), SHUT_RDWR), 0);

  HeldChild child(AfterRelease::report_then_pause);
  const auto unit = unique_name("recon") + ".scope";
  manager.start_transient_unit(unit, minimal_scope(child.pid()));
  EXPECT_EQ(manager.reconnects(), 1U);
  EXPECT_EQ(manager.list_units_by_patterns({"active"}, {unit}).size(), 1U);
  manager.stop_unit(unit);
}

}  // namespace
}  // namespace runscope::systemd
