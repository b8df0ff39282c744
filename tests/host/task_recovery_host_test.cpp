// Tasks survive the daemon: a manager in a forked child starts 20 tasks and is kill -9'd; some
// tasks end while it is gone (one's task.json corrupted); a new manager over the same state dir reattaches the running ones,
// reports the ended ones with their true exit codes, removes what no task owns and touches
// nothing else. Also: managers, tasks and subscriptions made and destroyed in a loop return the
// thread and fd counts to their baseline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <mutex>
#include <set>

#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/catalog.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::shell_task;

constexpr int kTasks = 20;
constexpr int kCorrupted = 18;  // a running task whose task.json the test corrupts (then rebuilt)

std::size_t count_entries(const char* dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

bool in_cgroup(pid_t pid, const std::string& part) {
  auto text = read_file_if_exists(fs::path("/proc") / std::to_string(pid) / "cgroup");
  return text && text->find(part) != std::string::npos;
}

// The "daemon": starts the tasks, says so on `ready`, then waits to be killed. Never returns.
[[noreturn]] void run_daemon(const testing::V1Env& env, const fs::path& state, const fs::path& go, int ready) {
  try {
    SteadyClock clock;
    auto backend = env.make_backend(clock);
    ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
    ManagerOptions options;
    options.state_dir = state;
    TaskManager manager(*backend, nullptr, launcher, clock, options);
    for (int i = 0; i < kTasks; ++i) {
      bool ends = i % 2 == 1;
      std::string script = ends ? "while [ ! -e " + go.string() + " ]; do sleep 0.02; done; exit " + std::to_string(i)
                                : std::string("sleep 1000");
      manager.start(shell_task("rec-" + std::to_string(::getpid()), "task-" + std::to_string(i), script), Caller{});
    }
    if (::write(ready, "k", 1) != 1) ::_exit(2);
    for (;;) ::pause();
  } catch (...) {
    ::_exit(1);
  }
}

TEST(ATaskManagerAfterDaemonDeath, ReattachesRunningTasksReportsEndedOnesAndOrphansNothing) {
  if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
  testing::become_subreaper();
  auto env = testing::make_v1_env("rec");
  testing::TempDir tmp;
  fs::path state = tmp.path() / "state", go = tmp.path() / "go";
  pid_t foreign = ::fork();
  if (foreign == 0) {
    ::execl("/bin/sleep", "sleep", "1000", nullptr);
    ::_exit(127);
  }
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  pid_t daemon = ::fork();
  if (daemon == 0) run_daemon(env, state, go, p[1]);
  ::close(p[1]);
  char c = 0;
  ASSERT_EQ(::read(p[0], &c, 1), 1) << "the daemon child failed to start its tasks";
  ::close(p[0]);
  ::kill(daemon, SIGKILL);
  ::waitpid(daemon, nullptr, 0);
  std::string alloc = "rec-" + std::to_string(daemon);

  // While it is dead: the odd tasks end; one task's state is corrupted; a stray cgroup appears.
  std::ofstream(go) << "go";
  auto dir_of = [&](int i) { return state / kTasksDir / TaskId(alloc, "task-" + std::to_string(i)).cgroup_name(); };
  for (int i = 1; i < kTasks; i += 2) {
    EXPECT_TRUE(testing::wait_until([&] { return fs::exists(dir_of(i) / "exit.json"); }, 30s)) << i;
  }
  auto corrupted = read_task_record(dir_of(kCorrupted));
  std::ofstream(dir_of(kCorrupted) / kTaskFile) << "{ not json";
  for (const char* ctl : {"memory", "pids"}) {
    if (env.layout.v1_mounts.count(ctl)) {
      fs::create_directory(env.layout.v1_mounts.at(ctl) / fs::path(env.own.at(ctl)).relative_path() / env.parent / "stray");
    }
  }

  SteadyClock clock;
  auto backend = env.make_backend(clock);
  ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
  ManagerOptions options;
  options.state_dir = state;
  std::mutex log_mutex;  // the manager logs from several threads at once
  std::vector<std::string> log;
  auto manager = std::make_unique<TaskManager>(*backend, nullptr, launcher, clock, options, [&](const std::string& l) {
    std::lock_guard lock(log_mutex);
    log.push_back(l);
  });
  manager->recover();

  for (int i = 0; i < kTasks; ++i) {
    TaskId id(alloc, "task-" + std::to_string(i));
    auto info = manager->inspect(id, Caller{});
    if (i == kCorrupted) {  // rebuilt from launch.json and its cgroup: reattached, not killed
      EXPECT_EQ(info.state, TaskState::running);
      EXPECT_EQ(info.pid, corrupted.info.pid);
      continue;
    }
    if (i % 2 == 1) {
      EXPECT_EQ(info.state, TaskState::exited) << i;
      EXPECT_EQ(info.exit_code, i);
    } else {
      EXPECT_EQ(info.state, TaskState::running) << i;
      EXPECT_TRUE(in_cgroup(info.pid, id.cgroup_name())) << i;
    }
  }
  EXPECT_TRUE(testing::process_alive(foreign)) << "a foreign process was touched";
  // Only the running tasks' cgroups are left: one folder per hierarchy for each of them.
  std::set<std::string> left;
  for (const auto& p : env.leftovers()) left.insert(p.filename().string());
  std::set<std::string> running;
  for (int i = 0; i < kTasks; i += 2) running.insert(TaskId(alloc, "task-" + std::to_string(i)).cgroup_name());
  EXPECT_EQ(left, running);
  {
    std::lock_guard lock(log_mutex);  // the manager still runs
    EXPECT_THAT(log, ::testing::Contains(::testing::HasSubstr("removed cgroup stray")));
    EXPECT_THAT(log, ::testing::Contains(::testing::HasSubstr("task.json")));
    EXPECT_THAT(log, ::testing::Contains(::testing::HasSubstr("rebuilt task " + TaskId(alloc, "task-" + std::to_string(kCorrupted)).display())));
  }

  manager->shutdown(false);
  manager.reset();
  ::kill(foreign, SIGKILL);
  ::waitpid(foreign, nullptr, 0);
  testing::reap_zombies();
  EXPECT_THAT(env.leftovers(), ::testing::IsEmpty());
  env.remove_parent();
}

TEST(ATaskManagerLifetime, ReturnsThreadsAndFdsToTheirBaseline) {
  if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
  auto env = testing::make_v1_env("base");
  testing::TempDir tmp;
  SteadyClock clock;
  ExecShimLauncher launcher(RUNSCOPE_SHIM_BINARY);
  auto cycle = [&](int round) {
    auto backend = env.make_backend(clock);
    ManagerOptions options;
    options.state_dir = tmp.path() / "state";
    auto manager = std::make_unique<TaskManager>(*backend, nullptr, launcher, clock, options);
    auto waiter = std::make_unique<testing::StateWaiter>(*manager);
    std::vector<std::unique_ptr<Subscription>> subs;
    for (int i = 0; i < 3; ++i) subs.push_back(manager->subscribe([](const TaskId&, const TaskEvent&) {}));
    driver::default_catalog().validate(shell_task("v", "validate-only", "true"));  // a validation-only use
    auto id = manager->start(shell_task("base", "t" + std::to_string(round), "true"), Caller{});
    EXPECT_TRUE(waiter->wait_final(id));
    manager->destroy(id, Caller{});
    subs.clear();
    waiter.reset();
    manager.reset();
  };
  cycle(-1);  // first use: lazily made process-wide things
  auto threads = count_entries("/proc/self/task"), fds = count_entries("/proc/self/fd");
  for (int round = 0; round < 10; ++round) cycle(round);
  EXPECT_EQ(count_entries("/proc/self/task"), threads);
  EXPECT_EQ(count_entries("/proc/self/fd"), fds);
  EXPECT_THAT(env.leftovers(), ::testing::IsEmpty());
  env.remove_parent();
}

}  // namespace
}  // namespace runscope::daemon
