// Restart recovery at the backend level: a cgroup left by an earlier run (disowned) is listed by
// existing(), adopted by its folder name, and its processes killed and folders removed by destroy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cgroup/host.hpp"
#include "cgroup/v1_backend.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "support/held_child.hpp"
#include "driver/manager_choice.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool has_subfolders(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory()) return true;
  }
  return false;
}

void adopt_what_a_previous_run_left(Backend& backend) {
  testing::become_subreaper();
  TaskId id("adopt-" + std::to_string(::getpid()), "left-behind");
  auto first = backend.create(id, {});
  testing::HeldChild child("sleep 1000");
  first->place(child.pid());
  child.release();
  first->disown();
  first.reset();  // the "daemon" is gone; the task is not
  ASSERT_TRUE(testing::process_alive(child.pid()));

  auto listed = backend.existing();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].first, id.cgroup_name());
  auto again = backend.adopt(id.cgroup_name(), CpuPartition::none);
  EXPECT_THAT(again->pids(), ::testing::Contains(child.pid()));
  SteadyClock clock;
  again->destroy(Deadline(clock, 30s));
  testing::reap_zombies();
  EXPECT_FALSE(testing::process_alive(child.pid()));
  EXPECT_TRUE(backend.existing().empty());
  try {
    backend.adopt(id.cgroup_name(), CpuPartition::none);
    FAIL() << "adopted a cgroup that is gone";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
  EXPECT_THROW(backend.adopt("../escape", CpuPartition::none), Error);
}

TEST(AV1Backend, AdoptsACgroupAnEarlierRunLeftAndRemovesIt) {
  if (!testing::is_root()) GTEST_SKIP() << "needs root to write cgroupfs";
  auto layout = driver::detect_layout();
  if (layout.version() != Version::v1) GTEST_SKIP() << "needs cgroup v1";
  auto own = own_cgroups();
  std::string parent = "runscope-test-" + std::to_string(::getpid()) + "-adopt1";
  SteadyClock clock;
  auto backend = make_v1_backend(V1Options{layout, own, parent, &clock, CgroupFsOps::kernel(), "/proc"});
  adopt_what_a_previous_run_left(*backend);
  for (const char* c : kV1TaskControllers) {
    if (!layout.v1_mounts.count(c)) continue;
    auto base = layout.v1_mounts.at(c) / fs::path(own.at(c)).relative_path() / parent;
    EXPECT_FALSE(has_subfolders(base)) << base;
    ::rmdir(base.c_str());
    EXPECT_FALSE(fs::exists(base)) << base;
  }
}

TEST(AV2Backend, AdoptsACgroupAnEarlierRunLeftAndRemovesIt) {
  if (!testing::is_root()) GTEST_SKIP() << "needs root to write cgroupfs";
  auto layout = driver::detect_layout();
  if (layout.unified_mount.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  fs::path parent = "runscope-test-" + std::to_string(::getpid()) + "-adopt2";
  SteadyClock clock;
  auto backend = make_v2_backend(V2Options{layout.unified_mount, parent, &clock, CgroupFsOps::kernel()});
  adopt_what_a_previous_run_left(*backend);
  EXPECT_FALSE(has_subfolders(layout.unified_mount / parent));
  ::rmdir((layout.unified_mount / parent).c_str());
  EXPECT_FALSE(fs::exists(layout.unified_mount / parent));
}

}  // namespace
}  // namespace runscope::cgroup
