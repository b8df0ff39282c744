// The systemd cpuset applier against the contained systemd: the slices' and the scope's
// AllowedCPUs read back exactly after each step. (systemd here runs cgroup2 without the cpuset
// controller, so this checks the unit properties; enforcement is checked on the host's v1 path.)
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/error.hpp"
#include "cpuset/cpusets.hpp"
#include "cpuset/systemd_applier.hpp"
#include "systemd/contained.hpp"
#include "systemd/scope_backend.hpp"
#include "systemd/sdbus_manager.hpp"

namespace runscope::cpuset {
namespace {

using namespace std::chrono_literals;
using runscope::systemd_testing::AfterRelease;
using runscope::systemd_testing::HeldChild;

class TheSystemdCpusets : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
    if (!CpuSet::parse("0-1").is_subset_of(Topology::read().online())) GTEST_SKIP() << "needs CPUs 0 and 1";
    manager_ = std::make_unique<systemd::SdbusSystemdManager>();
    applier_ = std::make_unique<SystemdApplier>(*manager_, parent_);
    systemd::SystemdBackendOptions options;
    options.parent_slice = parent_;
    backend_ = std::make_unique<systemd::SystemdBackend>(*manager_, options);
    cpusets_ = std::make_unique<Cpusets>(Planner(Topology::read(), CpuSet::parse("0-1"), {}, 1), *applier_,
                                         system_clock(), 30s);
  }

  void TearDown() override {
    if (!manager_) return;
    for (const auto& slice : {applier_->unit(Target::shared()), applier_->unit(Target::reserved()), parent_}) {
      try {
        manager_->stop_unit(slice);
      } catch (const Error& e) {
        ADD_FAILURE() << "could not stop " << slice << ": " << e.what();
      }
    }
  }

  std::string allowed(const std::string& unit, const char* interface) {
    auto value = manager_->get_unit_property(unit, interface, kAllowedCpus);
    return CpuSet::from_mask(std::get<std::vector<std::uint8_t>>(value)).to_string();
  }
  std::string shared() { return allowed(applier_->unit(Target::shared()), kSliceInterface); }
  std::string reserved() { return allowed(applier_->unit(Target::reserved()), kSliceInterface); }

  std::string parent_ = "rt" + std::to_string(::getpid()) + "cpus.slice";
  std::unique_ptr<systemd::SdbusSystemdManager> manager_;
  std::unique_ptr<SystemdApplier> applier_;
  std::unique_ptr<systemd::SystemdBackend> backend_;
  std::unique_ptr<Cpusets> cpusets_;
};

TEST_F(TheSystemdCpusets, ReadBackExactlyAfterEachStep) {
  cpusets_->start();
  EXPECT_EQ(shared(), "0-1");
  EXPECT_EQ(reserved(), "0-1");
  cpusets_->add_shared_task();

  TaskId id(systemd_testing::unique_name("alloc"), "db");
  CpuSet mine = cpusets_->reserve(id, 1);
  std::string other = (CpuSet::parse("0-1") - mine).to_string();
  EXPECT_EQ(shared(), other);

  cgroup::Limits limits;
  limits.partition = cgroup::CpuPartition::reserved;
  limits.cpuset = mine;
  auto scope = backend_->create(id, limits);
  HeldChild child(AfterRelease::report_then_pause);
  scope->place(child.pid());
  child.release();
  EXPECT_EQ(allowed(id.unit_name(), kScopeInterface), mine.to_string());
  auto writes = cpusets_->counts().writes;
  cpusets_->reconcile_now();
  EXPECT_EQ(cpusets_->counts().writes, writes) << "the scope backend and the reconciler disagree";

  // Drift: the shared slice changed by hand is put back by the next reconcile.
  manager_->set_unit_properties(applier_->unit(Target::shared()), true,
                                {systemd::UnitProperty{kAllowedCpus, CpuSet::parse("0-1").to_mask()}});
  EXPECT_EQ(shared(), "0-1");
  cpusets_->reconcile_now();
  EXPECT_EQ(cpusets_->counts().writes, writes + 1);
  EXPECT_EQ(shared(), other);

  try {
    cpusets_->reserve(TaskId(id.alloc(), "second"), 1);
    ADD_FAILURE() << "took the last shared core while a shared task runs";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resources);
  }

  scope->destroy(Deadline(system_clock(), 10s));  // the task leaves before its core returns
  EXPECT_TRUE(child.reap());
  cpusets_->release(id);
  EXPECT_EQ(shared(), "0-1");
  EXPECT_EQ(reserved(), "0-1");
}

}  // namespace
}  // namespace runscope::cpuset
