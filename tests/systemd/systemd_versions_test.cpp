// What differs between the systemd versions runscope runs on (252: Debian 12; 257: Debian 13, run by
// scripts/test-debian13.sh), checked against the real one: each test states what runscope relies
// on, and what the version in front of it does where versions part (docs/systemd.md, "systemd 257").
#include <algorithm>
#include <filesystem>
#include <string>

#include "common/file.hpp"
#include "systemd/backend_fixture.hpp"

namespace runscope::systemd {
namespace {

using cgroup::Limits;
using namespace runscope::systemd_testing;
using namespace std::chrono_literals;

class ThisSystemdVersion : public ContainedBackendTest {
 protected:
  void SetUp() override {
    ContainedBackendTest::SetUp();
    if (IsSkipped()) return;
    version_ = std::stoi(manager_->version());
  }

  static TaskId new_task(const std::string& task) { return ContainedBackendTest::new_task("ver", task); }
  std::string show(const std::string& unit, const std::string& property) {
    auto out = run_command("systemctl show -p " + property + " --value " + unit);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  // Versions whose behaviour below was measured; others are held only to what runscope relies on.
  bool measured() const { return version_ == 252 || version_ == 257; }

  int version_ = 0;
};

TEST_F(ThisSystemdVersion, TakesThePidfdFrom253OnAndThePidBefore) {
  const auto id = new_task("pidfd");
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  child.release();
  EXPECT_EQ(unified_line(child.first_report()), "/runscope.slice/" + id.unit_name());
  // StartTransientUnit's PIDFDs came in 253; before it, PropertyReadOnly/UnknownProperty and PIDs.
  EXPECT_EQ(backend_->pidfd_support(), version_ >= 253 ? SystemdBackend::PidfdSupport::supported
                                                       : SystemdBackend::PidfdSupport::refused)
      << "systemd " << version_;
  cg->destroy(deadline());
  EXPECT_TRUE(child.reap());
}

TEST_F(ThisSystemdVersion, KeepsAScopesCgroupThroughADaemonReloadWhateverItsSlicePropertySays) {
  const auto id = new_task("reload");
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  child.release();
  ASSERT_FALSE(child.first_report().empty());
  EXPECT_EQ(show(id.unit_name(), "Slice"), "runscope.slice");

  run_command("systemctl daemon-reload");
  // What runscope relies on (adopt() and find_scopes() go by it): the cgroup stays.
  EXPECT_EQ(show(id.unit_name(), "ControlGroup"), "/runscope.slice/" + id.unit_name());
  // Measured on 252 and on 257 alike: a transient scope's Slice then reads system.slice.
  const auto slice = show(id.unit_name(), "Slice");
  if (measured()) {
    EXPECT_EQ(slice, "system.slice") << "systemd " << version_ << ": docs/systemd.md is out of date";
  }
  const auto found = backend_->find_scopes();
  EXPECT_TRUE(std::any_of(found.begin(), found.end(), [&](const FoundScope& s) { return s.unit == id.unit_name(); }));
  cg->destroy(deadline());
  EXPECT_TRUE(child.reap());
  EXPECT_TRUE(unit_gone(id.unit_name()));
}

TEST_F(ThisSystemdVersion, LeavesAFreezeThroughTheScopesOwnFilesToUsAndLetsUsKillThrough) {
  const auto id = new_task("freeze");
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::fork_tree_then_pause, 3);  // 8 processes
  cg->place(child.pid());
  child.release();
  ASSERT_TRUE(eventually([&] { return cg->pids().size() == 8; })) << cg->pids().size();
  const std::filesystem::path dir = "/sys/fs/cgroup/runscope.slice/" + id.unit_name();
  write_file(dir / "cgroup.freeze", "1");
  ASSERT_TRUE(eventually([&] { return read_file(dir / "cgroup.events").find("frozen 1") != std::string::npos; }));
  // systemd neither follows a freeze it did not make (FreezeUnit, which runscope avoids) nor undoes it.
  if (measured()) {
    EXPECT_EQ(show(id.unit_name(), "FreezerState"), "running") << "systemd " << version_;
  }
  EXPECT_EQ(show(id.unit_name(), "ActiveState"), "active");
  EXPECT_NE(read_file(dir / "cgroup.events").find("frozen 1"), std::string::npos);
  // The kill (cgroup.kill, or freeze-SIGKILL-thaw) empties a frozen scope, and StopUnit ends it.
  cg->destroy(deadline());
  EXPECT_TRUE(child.reap());
  EXPECT_TRUE(unit_gone(id.unit_name()));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST_F(ThisSystemdVersion, DropsAScopeThatCgroupKillEmptiedAndOurDestroyStillEndsCleanly) {
  const auto id = new_task("kill");
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  child.release();
  ASSERT_FALSE(child.first_report().empty());
  const std::filesystem::path dir = "/sys/fs/cgroup/runscope.slice/" + id.unit_name();
  ASSERT_TRUE(std::filesystem::exists(dir / "cgroup.kill")) << "kernel without cgroup.kill";
  write_file(dir / "cgroup.kill", "1");
  EXPECT_TRUE(child.reap());
  // An empty scope ends by itself (CollectMode=inactive-or-failed: no unit left to reset).
  EXPECT_TRUE(unit_gone(id.unit_name()));
  EXPECT_NO_THROW(cg->destroy(deadline()));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace runscope::systemd
