// The migration primer on this host's real cgroup2 mount (on this hybrid machine
// /sys/fs/cgroup/unified): the kernel takes its write, and it moves nothing, in any hierarchy.
#include <gtest/gtest.h>
#include <unistd.h>

#include "cgroup/migration_primer.hpp"
#include "common/file.hpp"
#include "driver/manager_choice.hpp"
#include "support/held_child.hpp"

namespace runscope::cgroup {
namespace {

class AMigrationPrimerOnThisHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::is_root()) GTEST_SKIP() << "needs root to write cgroup.threads";
    mount_ = driver::detect_layout().unified_mount;
    if (mount_.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  }

  std::filesystem::path mount_;
};

TEST_F(AMigrationPrimerOnThisHost, MovesTheCallingThreadToWhereItAlreadyIs) {
  const auto before = read_file("/proc/thread-self/cgroup");
  const auto process_before = read_file("/proc/self/cgroup");
  EXPECT_EQ(prime_migration_lock({mount_}, ::gettid()), 0);
  EXPECT_EQ(read_file("/proc/thread-self/cgroup"), before);  // every hierarchy, memory's too
  EXPECT_EQ(read_file("/proc/self/cgroup"), process_before);
}

TEST_F(AMigrationPrimerOnThisHost, PrimesFromItsThreadAndLeavesTheProcessWhereItWas) {
  const auto before = read_file("/proc/self/cgroup");
  MigrationPrimer primer({mount_});
  EXPECT_EQ(primer.finish(), 0) << "the kernel refused the write";
  EXPECT_EQ(read_file("/proc/self/cgroup"), before);
}

TEST_F(AMigrationPrimerOnThisHost, RefusesAnotherThreadsTidWithoutMovingIt) {
  // The kernel answers for the tid it is given; the primer only ever gives its own. A pid that
  // is no thread at all (pid_max is below 2^22) is refused, and nothing moves.
  const auto before = read_file("/proc/self/cgroup");
  EXPECT_NE(prime_migration_lock({mount_}, 4194304 + 7), 0);
  EXPECT_EQ(read_file("/proc/self/cgroup"), before);
}

}  // namespace
}  // namespace runscope::cgroup
