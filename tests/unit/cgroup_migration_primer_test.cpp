// The migration primer against a fake cgroup2 tree: which file it reads, where it writes, and
// that it makes nothing where the kernel's files are missing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "cgroup/migration_primer.hpp"
#include "common/file.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;

class AMigrationPrimer : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(mount() / "user.slice/session-1.scope");
    write_file_atomic(mount() / "user.slice/session-1.scope/cgroup.threads", "");
    // A hybrid host's file: the v1 lines come first and name other paths.
    write_file_atomic(thread_file(), "4:memory:/elsewhere\n1:name=systemd:/other\n0::/user.slice/session-1.scope\n");
  }

  fs::path mount() const { return dir_.path() / "cgroup2"; }
  fs::path thread_file() const { return dir_.path() / "thread-cgroup"; }
  fs::path threads_file() const { return mount() / "user.slice/session-1.scope/cgroup.threads"; }
  MigrationPrimerPaths paths() const { return {mount(), thread_file()}; }

  testing::TempDir dir_;
};

TEST_F(AMigrationPrimer, WritesTheTidToTheCgroupThreadsFileOfTheCgroupTheThreadIsIn) {
  EXPECT_EQ(prime_migration_lock(paths(), 4242), 0);
  EXPECT_EQ(read_file(threads_file()), "4242");
}

TEST_F(AMigrationPrimer, WritesFromAThreadOfItsOwnSoTheCallerDoesNotWaitForTheKernel) {
  MigrationPrimer primer(paths());
  EXPECT_EQ(primer.finish(), 0);
  const auto written = read_file(threads_file());
  ASSERT_FALSE(written.empty()) << "the primer wrote nothing";
  EXPECT_NE(written, std::to_string(::gettid())) << "the primer wrote from the calling thread";
  EXPECT_GT(std::stol(written), 0);
}

TEST_F(AMigrationPrimer, MakesNoFileWhereTheKernelsIsMissing) {
  fs::remove(threads_file());
  EXPECT_EQ(prime_migration_lock(paths(), 4242), ENOENT);
  EXPECT_FALSE(fs::exists(threads_file()));
}

TEST_F(AMigrationPrimer, DoesNothingWithoutACgroup2Line) {
  write_file_atomic(thread_file(), "4:memory:/user.slice/session-1.scope\n");
  EXPECT_EQ(prime_migration_lock(paths(), 4242), ENOENT);
  EXPECT_EQ(read_file(threads_file()), "");
}

TEST_F(AMigrationPrimer, FailsQuietlyWhenItCannotReadItsCgroup) {
  fs::remove(thread_file());
  EXPECT_NE(prime_migration_lock(paths(), 4242), 0);
  MigrationPrimer primer(paths());
  EXPECT_NE(primer.finish(), 0);  // no throw: it has only saved nothing
  EXPECT_EQ(read_file(threads_file()), "");
}

}  // namespace
}  // namespace runscope::cgroup
