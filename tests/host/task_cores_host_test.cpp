// `resources.cores` through the TaskManager: the task gets its own core (RUNSCOPE_CPU_CORES says
// which), shared tasks stop using it, and it returns to the pool when the task ends.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/file.hpp"
#include "cpuset/cgroupfs_applier.hpp"
#include "cpuset/cpusets.hpp"
#include "cpuset/topology.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::shell_task;

constexpr const char* kReport = "grep Cpus_allowed_list /proc/self/status | cut -f2; echo \"$RUNSCOPE_CPU_CORES\"";

TEST(ATaskManagerWithCpusets, GivesAReservedTaskItsOwnCoreAndTellsItWhich) {
  if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
  if (!CpuSet::parse("0-1").is_subset_of(cpuset::Topology::read().online())) GTEST_SKIP() << "needs CPUs 0 and 1";
  testing::become_subreaper();
  auto env = testing::make_v1_env("cores");
  if (!env.layout.v1_mounts.count("cpuset")) GTEST_SKIP() << "needs a v1 cpuset hierarchy";
  SteadyClock clock;
  testing::TempDir tmp;
  {
    auto backend = env.make_backend(clock);
    auto dir = env.layout.v1_mounts.at("cpuset") / fs::path(env.own.at("cpuset")).relative_path() / env.parent;
    cpuset::CgroupfsApplier applier(cpuset::CgroupfsApplierOptions{dir, cgroup::Version::v1});
    cpuset::Cpusets cpusets(cpuset::Planner(cpuset::Topology::read(), CpuSet::parse("0-1"), {}, 1), applier, clock, 30s);
    cpusets.start();
    ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
    ManagerOptions options;
    options.state_dir = tmp.path() / "state";
    TaskManager manager(*backend, &cpusets, launcher, clock, options);
    testing::StateWaiter waiter(manager);

    auto spec = shell_task("c1", "pinned", std::string(kReport) + "; sleep 1000");
    spec.resources.cores = 1;
    auto pinned = manager.start(spec, Caller{});
    auto cpus = manager.inspect(pinned, Caller{}).cpus;
    ASSERT_TRUE(cpus);
    EXPECT_EQ(cpus->size(), 1u);
    ASSERT_EQ(manager.cpu_pool().reservations.size(), 1u);

    auto shared = manager.start(shell_task("c1", "shared", kReport), Caller{});
    ASSERT_TRUE(waiter.wait_final(shared));
    auto shared_out = read_file(*manager.logs(shared, Caller{}).stdout_path);
    auto shared_cpus = CpuSet::parse(trim(shared_out.substr(0, shared_out.find('\n'))));
    EXPECT_FALSE(shared_cpus.intersects(*cpus)) << shared_out;

    auto pinned_log = *manager.logs(pinned, Caller{}).stdout_path;
    ASSERT_TRUE(testing::wait_until([&] { return read_file(pinned_log).find('\n', read_file(pinned_log).find('\n') + 1) != std::string::npos; }, 30s));
    EXPECT_EQ(read_file(pinned_log), cpus->to_string() + "\n" + cpus->to_string() + "\n");

    manager.stop(pinned, 0s, Caller{});
    EXPECT_TRUE(manager.cpu_pool().reservations.empty());
    manager.shutdown(false);
  }
  testing::reap_zombies();
  EXPECT_THAT(env.leftovers(), ::testing::IsEmpty());
  env.remove_parent();
}

}  // namespace
}  // namespace runscope::daemon
