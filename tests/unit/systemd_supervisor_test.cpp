// Where the systemd backend puts every task's shim, against a fake SystemdManager and a fake
// cgroup2 tree: a cgroup of its own below ONE delegated supervisors' scope, made once around an
// anchor process (a real `sleep` here) and again when it ended; no systemd call per start beyond
// the task's own scope; the shim's cgroup removed with its task, kept when disowned, and removed
// at recovery when no running task owns it; a foreign unit of the scope's name is never used.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "support/fake_cgroup_tree.hpp"
#include "support/fake_systemd_manager.hpp"
#include "systemd/properties.hpp"
#include "systemd/scope_backend.hpp"

namespace runscope::systemd {
namespace {

namespace fs = std::filesystem;
using runscope::testing::FakeManager;
using ::testing::HasSubstr;

constexpr const char* kScope = "runscope\\x2dsupervisors.scope";

class TheSupervisorsScope : public ::testing::Test {
 protected:
  TheSupervisorsScope() : mount_(tree_.add_v2({})), manager_(tree_, mount_, tree_.root() / "proc") {
    options_.cgroup_root = mount_;
    options_.proc_root = tree_.root() / "proc";
    options_.clock = &clock_;
    options_.ops = tree_.ops();
    options_.supervisor_anchor = {"/bin/sleep", "600"};
    manager_.pid_for_pidfd = ::getpid();
  }
  ~TheSupervisorsScope() override {
    for (const auto& start : manager_.starts) {  // the anchors are nobody's children: killed here
      if (start.name != kScope) continue;
      for (auto pid : std::get<std::vector<std::uint32_t>>(find_property(start.props, "PIDs")->value))
        ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
  }
  SystemdBackend backend() { return SystemdBackend(manager_, options_); }
  fs::path scope_dir() const { return mount_ / "runscope.slice/runscope-supervisors.slice" / kScope; }
  int scope_starts() const {
    return static_cast<int>(std::count_if(manager_.starts.begin(), manager_.starts.end(),
                                          [](const auto& s) { return s.name == kScope; }));
  }
  pid_t anchor_of(std::size_t start) const {
    return static_cast<pid_t>(std::get<std::vector<std::uint32_t>>(find_property(manager_.starts.at(start).props, "PIDs")->value).at(0));
  }
  // What the forked shim does before it execs.
  static void join(cgroup::SupervisorHome& home) {
    for (int fd : home.join_fds()) ASSERT_EQ(::write(fd, "0", 1), 1);
  }

  runscope::testing::FakeCgroupTree tree_;
  fs::path mount_;
  FakeManager manager_;
  FakeClock clock_;
  SystemdBackendOptions options_;
  const TaskId id_{"alloc1", "web"};
};

TEST_F(TheSupervisorsScope, IsMadeOnceAroundAnAnchorAndGivesEachShimACgroupOfItsOwn) {
  auto b = backend();
  auto one = b.create(id_, cgroup::Limits{});
  auto* home = one->supervisor_home();
  ASSERT_NE(home, nullptr);
  EXPECT_TRUE(manager_.starts.empty()) << "nothing is made before a shim needs it";
  join(*home);
  ASSERT_EQ(manager_.starts.size(), 1U);
  const auto& props = manager_.starts[0].props;
  EXPECT_EQ(std::get<std::string>(find_property(props, "Slice")->value), "runscope-supervisors.slice");
  EXPECT_TRUE(std::get<bool>(find_property(props, "Delegate")->value));
  const pid_t anchor = anchor_of(0);
  EXPECT_EQ(::kill(anchor, 0), 0) << "the anchor runs";
  EXPECT_EQ(tree_.read(scope_dir() / "alloc1-web/cgroup.procs"), "0");
  EXPECT_EQ(home->location(), std::string("runscope-supervisors.slice/") + kScope + "/alloc1-web");

  auto two = b.create(TaskId("alloc1", "db"), cgroup::Limits{});
  join(*two->supervisor_home());
  EXPECT_TRUE(tree_.exists(scope_dir() / "alloc1-db"));
  EXPECT_EQ(scope_starts(), 1) << "one scope for every shim";
  // A task's own place() still costs one StartTransientUnit: its scope, nothing for its shim.
  two->place(::getpid());
  EXPECT_EQ(manager_.starts.size(), 2U);
  EXPECT_EQ(manager_.starts.back().name, "alloc1-db.scope");
  EXPECT_NE(manager_.cgroups.at("alloc1-db.scope"), "/runscope.slice/runscope-supervisors.slice/" + std::string(kScope))
      << "never the task's own scope";
}

TEST_F(TheSupervisorsScope, RemovesAShimsCgroupWithItsTaskAndKeepsItWhenDisowned) {
  auto b = backend();
  auto done = b.create(id_, cgroup::Limits{});
  auto kept = b.create(TaskId("alloc1", "kept"), cgroup::Limits{});
  join(*done->supervisor_home());
  join(*kept->supervisor_home());
  done->place(::getpid());
  tree_.write(scope_dir() / "alloc1-web/cgroup.procs", "");  // the shim has ended
  done->destroy(Deadline(clock_, std::chrono::seconds(1)));
  EXPECT_FALSE(tree_.exists(scope_dir() / "alloc1-web"));
  kept->disown();  // the daemon stops, the task and its shim run on
  kept.reset();
  EXPECT_TRUE(tree_.exists(scope_dir() / "alloc1-kept"));
}

TEST_F(TheSupervisorsScope, RemovesTheShimCgroupOfAFailedStart) {
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  join(*cg->supervisor_home());
  manager_.misplace = true;  // the task's pid does not land in its scope
  EXPECT_THROW(cg->place(::getpid()), Error);
  tree_.write(scope_dir() / "alloc1-web/cgroup.procs", "");  // the launcher killed the shim
  cg.reset();
  EXPECT_FALSE(tree_.exists(scope_dir() / "alloc1-web"));
}

TEST_F(TheSupervisorsScope, RemovesTheCgroupsOfShimsNoRunningTaskOwnsAtRecovery) {
  auto b = backend();
  for (const char* t : {"web", "gone"}) {
    auto cg = b.create(TaskId("alloc1", t), cgroup::Limits{});
    join(*cg->supervisor_home());
    cg->disown();
  }
  tree_.write(scope_dir() / "alloc1-gone/cgroup.procs", "");  // the fake kernel ends no process: done for it
  auto restarted = backend();
  restarted.remove_stray_supervisors({"alloc1-web"});
  EXPECT_TRUE(tree_.exists(scope_dir() / "alloc1-web"));
  EXPECT_FALSE(tree_.exists(scope_dir() / "alloc1-gone"));
  EXPECT_EQ(scope_starts(), 1) << "recovery reuses the scope, never makes one";
  EXPECT_TRUE(manager_.stops.empty());
  // No task runs any more: the scope and its anchor go too (made again by the next start).
  tree_.write(scope_dir() / "alloc1-web/cgroup.procs", "");
  restarted.remove_stray_supervisors({});
  EXPECT_FALSE(tree_.exists(scope_dir() / "alloc1-web"));
  EXPECT_EQ(manager_.stops, std::vector<std::string>{kScope});
}

TEST_F(TheSupervisorsScope, IsMadeAgainAroundANewAnchorWhenItEnded) {
  auto b = backend();
  auto one = b.create(id_, cgroup::Limits{});
  join(*one->supervisor_home());
  // Someone stopped it: systemd killed everything in it and removed its cgroups.
  tree_.write(scope_dir() / "alloc1-web/cgroup.procs", "");
  ASSERT_EQ(tree_.ops().remove_dir(scope_dir() / "alloc1-web"), 0);
  ASSERT_EQ(tree_.ops().remove_dir(scope_dir()), 0);
  manager_.active.erase(kScope);
  auto two = b.create(TaskId("alloc1", "db"), cgroup::Limits{});
  join(*two->supervisor_home());
  EXPECT_EQ(scope_starts(), 2);
  EXPECT_NE(anchor_of(0), anchor_of(1));
  EXPECT_EQ(tree_.read(scope_dir() / "alloc1-db/cgroup.procs"), "0");
}

TEST_F(TheSupervisorsScope, NeverUsesAUnitOfItsNameOutsideItsSlice) {
  manager_.existing_state = "active";
  manager_.cgroups[kScope] = std::string("/user.slice/") + kScope;
  auto b = backend();
  auto cg = b.create(id_, cgroup::Limits{});
  try {
    join(*cg->supervisor_home());
    FAIL() << "joined someone else's unit";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
    EXPECT_THAT(e.what(), HasSubstr("user.slice"));
  }
  EXPECT_EQ(scope_starts(), 0);
  EXPECT_TRUE(manager_.resets.empty());
}

TEST_F(TheSupervisorsScope, TakesInAShimThatAlreadyRuns) {
  auto b = backend();
  auto adopted = b.create(id_, cgroup::Limits{});
  adopted->supervisor_home()->move_in(4242);  // e.g. left in the daemon's unit by an older runscoped
  EXPECT_EQ(tree_.read(scope_dir() / "alloc1-web/cgroup.procs"), "4242");
  // Home already (the usual case at a recovery): nothing is written.
  tree_.write(scope_dir() / "alloc1-web/cgroup.procs", "");
  fs::create_directories(tree_.root() / "proc/4242");
  tree_.write(tree_.root() / "proc/4242/cgroup",
              "0::/runscope.slice/runscope-supervisors.slice/" + std::string(kScope) + "/alloc1-web\n");
  adopted->supervisor_home()->move_in(4242);
  EXPECT_EQ(tree_.read(scope_dir() / "alloc1-web/cgroup.procs"), "");
  adopted->disown();
}

TEST(ASystemdBackendWithoutAnAnchor, GivesShimsNoHome) {
  runscope::testing::FakeCgroupTree tree;
  auto mount = tree.add_v2({});
  FakeManager manager(tree, mount, tree.root() / "proc");
  SystemdBackendOptions options;
  options.cgroup_root = mount;
  SystemdBackend b(manager, options);
  EXPECT_EQ(b.create(TaskId("a", "b"), cgroup::Limits{})->supervisor_home(), nullptr);
  EXPECT_NO_THROW(b.remove_stray_supervisors({}));
}

}  // namespace
}  // namespace runscope::systemd
