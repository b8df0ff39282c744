// SystemdBackend end to end: real systemd, real bus, real cgroup2 tree of the contained systemd.
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <filesystem>
#include <thread>

#include "common/file.hpp"
#include "systemd/backend_fixture.hpp"
#include "systemd/factory.hpp"

namespace runscope::systemd {
namespace {

using cgroup::Limits;
using namespace runscope::systemd_testing;
using namespace std::chrono_literals;

class ASystemdBackend : public ContainedBackendTest {
 protected:
  static TaskId new_task(const std::string& task = "web") { return ContainedBackendTest::new_task("alloc", task); }
};

TEST_F(ASystemdBackend, RunsATaskInItsOwnScopeFromItsFirstInstructionAndLeavesNothingAfterDestroy) {
  const auto id = new_task();
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  child.release();
  const auto expected = "/runscope.slice/" + id.unit_name();
  EXPECT_EQ(unified_line(child.first_report()), expected);
  EXPECT_EQ(cg->pids(), std::vector<pid_t>{child.pid()});
  EXPECT_TRUE(cg->populated());
  EXPECT_EQ(cg->location(), "runscope.slice/" + id.unit_name());
  EXPECT_EQ(active_state(id.unit_name()), "active");
  // Stats come from the scope's own folder: cpu.stat is there even without controllers.
  EXPECT_TRUE(std::filesystem::exists("/sys/fs/cgroup" + expected + "/cpu.stat"));
  EXPECT_NO_THROW(cg->stats());

  cg->destroy(deadline());
  EXPECT_TRUE(child.reap());
  EXPECT_TRUE(unit_gone(id.unit_name()));
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup" + expected));
}

TEST_F(ASystemdBackend, KillsAForkStormWithZeroSurvivorsAndTheUnitGone) {
  const auto id = new_task("storm");
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::fork_tree_then_pause, 8);  // 256 processes
  cg->place(child.pid());
  child.release();
  ASSERT_TRUE(eventually([&] { return cg->pids().size() == 256; }, 20s)) << cg->pids().size();
  const auto storm = cg->pids();

  cg->destroy(deadline(30s));
  EXPECT_TRUE(child.reap());
  EXPECT_TRUE(unit_gone(id.unit_name()));
  EXPECT_TRUE(cg->pids().empty());
  // Grandchildren are reaped by the namespace's PID 1: wait for it, then none may be left.
  const auto scope_path = "/runscope.slice/" + id.unit_name();
  auto survivors = [&] {
    return std::count_if(storm.begin(), storm.end(), [&](pid_t p) {
      auto text = read_file_if_exists("/proc/" + std::to_string(p) + "/cgroup");
      return text && unified_line(*text) == scope_path;
    });
  };
  EXPECT_TRUE(eventually([&] { return survivors() == 0; })) << survivors() << " survivors";
}

TEST_F(ASystemdBackend, ResetsAStaleFailedUnitOfItsOwnAndStartsTheTask) {
  const auto id = new_task("stale");
  {
    // A scope of that name, failed and kept (CollectMode=inactive): what runc #3780 hit.
    HeldChild doomed(AfterRelease::report_then_pause);
    manager_->start_transient_unit(
        id.unit_name(), {{"Slice", PropertyValue(std::string("runscope.slice"))},
                         {"PIDs", PropertyValue(std::vector<std::uint32_t>{static_cast<std::uint32_t>(doomed.pid())})},
                         {"RuntimeMaxUSec", PropertyValue(std::uint64_t{100'000})}});
    ASSERT_TRUE(eventually([&] { return active_state(id.unit_name()) == "failed"; }, 20s));
  }
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  ASSERT_NO_THROW(cg->place(child.pid()));
  child.release();
  EXPECT_EQ(unified_line(child.first_report()), "/runscope.slice/" + id.unit_name());
  cg->destroy(deadline());
  EXPECT_TRUE(unit_gone(id.unit_name()));
}

TEST_F(ASystemdBackend, RefusesToTakeOverALiveUnitOfTheSameNameThatIsNotOurs) {
  const auto id = new_task("taken");
  HeldChild other(AfterRelease::report_then_pause);
  manager_->start_transient_unit(
      id.unit_name(), {{"Slice", PropertyValue(std::string("other.slice"))},
                       {"PIDs", PropertyValue(std::vector<std::uint32_t>{static_cast<std::uint32_t>(other.pid())})}});
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  try {
    cg->place(child.pid());
    FAIL() << "expected a conflict";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::conflict);
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(active_state(id.unit_name()), "active") << "the other unit is left alone";
  manager_->stop_unit(id.unit_name());
}

TEST_F(ASystemdBackend, ReportsARefusedPropertyByNameAndLeavesNothing) {
  const auto id = new_task("refused");
  Limits limits;
  limits.cpu_weight = 100000;  // systemd accepts 1..10000 (and 0 as "idle" since 252)
  auto cg = backend_->create(id, limits);
  HeldChild child(AfterRelease::report_then_pause);
  try {
    cg->place(child.pid());
    FAIL() << "expected systemd to refuse CPUWeight=100000";
  } catch (const BusError& e) {
    EXPECT_NE(std::string(e.what()).find("CPUWeight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(id.unit_name()), std::string::npos) << e.what();
  }
  EXPECT_TRUE(unit_gone(id.unit_name()));
  EXPECT_EQ(unified_line(read_file_if_exists("/proc/" + std::to_string(child.pid()) + "/cgroup").value_or("")).find(".scope"),
            std::string::npos);
}

TEST_F(ASystemdBackend, StartsTwoHundredTasksAtOnceEachInItsOwnScope) {
  constexpr int kTasks = 200;
  std::vector<TaskId> ids;
  std::vector<std::unique_ptr<HeldChild>> children;
  std::vector<std::unique_ptr<cgroup::TaskCgroup>> cgs;
  for (int i = 0; i < kTasks; ++i) {
    ids.push_back(new_task("many"));
    children.push_back(std::make_unique<HeldChild>(AfterRelease::report_then_pause));
    cgs.push_back(backend_->create(ids.back(), Limits{}));
  }
  std::atomic<int> failures{0};
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kTasks; ++i)
      threads.emplace_back([&, i] {
        try {
          cgs[i]->place(children[i]->pid());
        } catch (const std::exception& e) {
          ++failures;
          ADD_FAILURE() << ids[i].display() << ": " << e.what();
        }
      });
  }
  ASSERT_EQ(failures.load(), 0);
  for (int i = 0; i < kTasks; ++i) {
    children[i]->release();
    EXPECT_EQ(unified_line(children[i]->first_report()), "/runscope.slice/" + ids[i].unit_name());
  }
  for (auto& cg : cgs) cg->destroy(deadline());
  EXPECT_TRUE(eventually([&] { return manager_->list_units_by_patterns({}, {"rt*-many*.scope"}).empty(); }));
}

// The daemon's path: begin_place() only sends StartTransientUnit; the job's end comes back as an
// event (no thread waits for systemd), then finish_place() on a thread of the caller's.
TEST_F(ASystemdBackend, PlacesTwoHundredTasksFromOneThreadWithTheJobWaitsAsEvents) {
  constexpr int kTasks = 200;
  std::vector<TaskId> ids;
  std::vector<std::unique_ptr<HeldChild>> children;
  std::vector<std::unique_ptr<cgroup::TaskCgroup>> cgs;
  for (int i = 0; i < kTasks; ++i) {
    ids.push_back(new_task("async"));
    children.push_back(std::make_unique<HeldChild>(AfterRelease::report_then_pause));
    cgs.push_back(backend_->create(ids.back(), Limits{}));
  }
  ASSERT_TRUE(cgs[0]->places_asynchronously());
  cgs[0]->place(children[0]->pid());  // the first start learns whether systemd takes PIDFDs
  // Shared with the callbacks, which run on the fixture's manager loop: if the wait below fails,
  // the ones still to come must not find it gone with this body.
  struct Progress {
    std::mutex m;
    std::condition_variable cv;
    int outstanding = 0, max_outstanding = 0, sent = 0;
    std::vector<std::exception_ptr> errors;
  };
  auto p = std::make_shared<Progress>();
  p->errors.resize(kTasks);
  for (int i = 1; i < kTasks; ++i) {
    {
      std::lock_guard lock(p->m);
      p->max_outstanding = std::max(p->max_outstanding, ++p->outstanding);
    }
    cgs[i]->begin_place(children[i]->pid(), [p, i](std::exception_ptr e) {
      std::lock_guard lock(p->m);
      p->errors[i] = e;
      --p->outstanding;
      ++p->sent;
      p->cv.notify_all();
    });
  }
  {
    std::unique_lock lock(p->m);
    ASSERT_TRUE(p->cv.wait_for(lock, 60s, [&] { return p->sent == kTasks - 1; }));
  }
  EXPECT_GT(p->max_outstanding, 1) << "every begin_place() waited for its job";
  for (int i = 1; i < kTasks; ++i) {
    ASSERT_FALSE(p->errors[i]) << ids[i].display();
    cgs[i]->finish_place(children[i]->pid());
  }
  for (int i = 0; i < kTasks; ++i) {
    children[i]->release();
    EXPECT_EQ(unified_line(children[i]->first_report()), "/runscope.slice/" + ids[i].unit_name());
  }
  for (auto& cg : cgs) cg->destroy(deadline());
  EXPECT_TRUE(eventually([&] { return manager_->list_units_by_patterns({}, {"rt*-async*.scope"}).empty(); }));
}

TEST_F(ASystemdBackend, SetsAllowedCPUsThatSystemctlShowReadsBack) {
  const auto id = new_task("pinned");
  Limits limits;
  limits.cpuset = CpuSet::parse("0");
  auto cg = backend_->create(id, limits);
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  EXPECT_EQ(run_command("systemctl show -p AllowedCPUs --value " + id.unit_name()), "0\n");
  // systemd pads the mask it returns to whole 64-bit words.
  EXPECT_EQ(CpuSet::from_mask(std::get<std::vector<std::uint8_t>>(
                manager_->get_unit_property(id.unit_name(), "org.freedesktop.systemd1.Scope", "AllowedCPUs"))),
            CpuSet::parse("0"));

  cg->set_cpuset(CpuSet::parse("0-1"));
  EXPECT_EQ(run_command("systemctl show -p AllowedCPUs --value " + id.unit_name()), "0-1\n");
  EXPECT_THROW(cg->set_cpuset(CpuSet{}), Error);
  EXPECT_EQ(run_command("systemctl show -p AllowedCPUs --value " + id.unit_name()), "0-1\n");
  cg->destroy(deadline());
}

TEST_F(ASystemdBackend, PutsPartitionedTasksUnderTheSharedAndReservedSlices) {
  Limits shared;
  shared.partition = cgroup::CpuPartition::shared;
  Limits reserved;
  reserved.partition = cgroup::CpuPartition::reserved;
  reserved.cpuset = CpuSet::parse("1");
  const auto a = new_task("shared");
  const auto b = new_task("reserved");
  auto cga = backend_->create(a, shared);
  auto cgb = backend_->create(b, reserved);
  HeldChild ca(AfterRelease::report_then_pause);
  HeldChild cb(AfterRelease::report_then_pause);
  cga->place(ca.pid());
  cgb->place(cb.pid());
  ca.release();
  cb.release();
  EXPECT_EQ(unified_line(ca.first_report()), "/runscope.slice/runscope-shared.slice/" + a.unit_name());
  EXPECT_EQ(unified_line(cb.first_report()), "/runscope.slice/runscope-reserved.slice/" + b.unit_name());

  SystemdBackend after_restart(*manager_);
  auto found = after_restart.find_scopes();
  auto has = [&](const std::string& unit) {
    return std::any_of(found.begin(), found.end(), [&](const FoundScope& s) { return s.unit == unit; });
  };
  EXPECT_TRUE(has(a.unit_name()));
  EXPECT_TRUE(has(b.unit_name()));
  cga->destroy(deadline());
  cgb->destroy(deadline());
}

// systemd 252 reports a transient scope's Slice as system.slice after a daemon-reload (a package
// upgrade does one), while its cgroup stays under ours: adoption must go by the cgroup.
TEST_F(ASystemdBackend, AdoptsAndFindsAPartitionedScopeAfterADaemonReload) {
  Limits shared;
  shared.partition = cgroup::CpuPartition::shared;
  const auto id = new_task("reloaded");
  auto cg = backend_->create(id, shared);
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  child.release();
  ASSERT_EQ(unified_line(child.first_report()), "/runscope.slice/runscope-shared.slice/" + id.unit_name());
  cg->disown();  // as a daemon that stops and leaves its tasks running
  cg.reset();

  run_command("systemctl daemon-reload");
  SystemdBackend after_restart(*manager_);
  auto found = after_restart.find_scopes();
  EXPECT_TRUE(std::any_of(found.begin(), found.end(), [&](const FoundScope& s) {
    return s.unit == id.unit_name() && s.slice == "runscope-shared.slice";
  }));
  auto adopted = after_restart.adopt(id.cgroup_name(), cgroup::CpuPartition::shared);
  EXPECT_EQ(adopted->pids(), std::vector<pid_t>{child.pid()});
  adopted->destroy(deadline());
  EXPECT_TRUE(child.reap());
  EXPECT_TRUE(unit_gone(id.unit_name()));
}

TEST_F(ASystemdBackend, KeepsRunningTasksThroughDaemonReloadAndDaemonReexec) {
  const auto id = new_task("survivor");
  auto cg = backend_->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  child.release();
  ASSERT_FALSE(child.first_report().empty());

  run_command("systemctl daemon-reload");
  EXPECT_EQ(active_state(id.unit_name()), "active");
  EXPECT_EQ(cg->pids(), std::vector<pid_t>{child.pid()});

  run_command("systemctl daemon-reexec");
  ASSERT_TRUE(eventually([&] {
    try {
      return active_state(id.unit_name()) == "active";
    } catch (const std::exception&) {
      return false;  // systemd is still re-executing
    }
  }, 30s));
  EXPECT_EQ(cg->pids(), std::vector<pid_t>{child.pid()});

  // The same connection still starts and stops scopes (JobRemoved still arrives).
  const auto next = new_task("after-reexec");
  auto cg2 = backend_->create(next, Limits{});
  HeldChild child2(AfterRelease::report_then_pause);
  cg2->place(child2.pid());
  cg2->destroy(deadline());
  cg->destroy(deadline());
  EXPECT_TRUE(child.reap());
  EXPECT_TRUE(unit_gone(id.unit_name()));
}

TEST(SystemdFactory, BuildsABackendFromConfigAndProbesTheVersion) {
  RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
  EXPECT_TRUE(probe_systemd_version().has_value());
  EXPECT_FALSE(probe_systemd_version("unix:path=/nonexistent/bus").has_value());
  config::CgroupsConfig cfg;
  cfg.parent = "factory.slice";
  auto backend = make_systemd_backend(cfg);
  EXPECT_EQ(backend->manager_name(), "systemd");
  const TaskId id(unique_name("alloc"), "factory");
  auto cg = backend->create(id, Limits{});
  HeldChild child(AfterRelease::report_then_pause);
  cg->place(child.pid());
  child.release();
  EXPECT_EQ(unified_line(child.first_report()), "/factory.slice/" + id.unit_name());
  cg->destroy(Deadline(system_clock(), 10s));
}

}  // namespace
}  // namespace runscope::systemd
