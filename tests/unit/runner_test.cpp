// The runner's decisions against a recording TaskCgroup double and real child processes:
// exit codes, graceful stop, cleanup on every path, denied uids, no_cgroups mode.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/runner.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::driver {
namespace {

using namespace std::chrono_literals;
using runscope::testing::FakeBackend;
using runscope::testing::TempDir;

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0; }

class ARunner : public ::testing::Test {
 protected:
  SpawnSpec shell(const std::string& script) {
    SpawnSpec spec;
    spec.argv = {"sh", "-c", script};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.stdout_path = dir_.path() / "out";
    return spec;
  }
  // Waits (with a deadline) until the task has written `text` to its stdout.
  bool wait_for_output(const std::string& text) {
    Deadline deadline(clock_, 10s);
    while (read_file_if_exists(dir_.path() / "out").value_or("").find(text) == std::string::npos) {
      if (deadline.expired()) return false;
      clock_.sleep_for(1ms);
    }
    return true;
  }
  TaskId id_{"alloc1", "web"};
  TempDir dir_;
  SteadyClock clock_;
  CloneSpawner spawner_;
  FakeBackend backend_;
  Runner runner_{&backend_, spawner_, clock_};
};

TEST_F(ARunner, CreatesTheCgroupWithTheLimitsAndRemovesItWhenTheTaskEnds) {
  cgroup::Limits limits;
  limits.pids_max = 64;
  auto task = runner_.start(id_, limits, shell("exit 7"));
  ASSERT_EQ(backend_.ids.size(), 1u);
  EXPECT_EQ(backend_.ids[0], id_);
  EXPECT_EQ(backend_.limits[0].pids_max, 64u);
  EXPECT_EQ(backend_.state->placed, std::vector<pid_t>{task->pid()});
  EXPECT_EQ(task->wait(), (ExitStatus{false, 7}));
  EXPECT_EQ(backend_.state->destroyed, 1);
}

TEST_F(ARunner, WaitWithADeadlineReturnsNothingWhileTheTaskRuns) {
  auto task = runner_.start(id_, {}, shell("exec sleep 30"));
  EXPECT_FALSE(task->wait(Deadline(clock_, 20ms)).has_value());
  EXPECT_FALSE(task->finished());
  EXPECT_EQ(backend_.state->destroyed, 0);
}

TEST_F(ARunner, GracefulStopSendsTheKillSignal) {
  auto task = runner_.start(id_, {}, shell("echo ready; exec sleep 30"), KillPolicy{SIGTERM, 10s});
  ASSERT_TRUE(wait_for_output("ready"));
  auto status = task->stop();
  EXPECT_EQ(status, (ExitStatus{true, SIGTERM}));
  EXPECT_EQ(status.shell_code(), 143);
  EXPECT_EQ(backend_.state->destroyed, 1);
}

TEST_F(ARunner, StopKillsATaskThatIgnoresTheKillSignalAfterTheTimeout) {
  auto task = runner_.start(id_, {}, shell("trap '' TERM; echo ready; exec sleep 30"),
                            KillPolicy{SIGTERM, 50ms});
  ASSERT_TRUE(wait_for_output("ready"));
  EXPECT_EQ(task->stop(), (ExitStatus{true, SIGKILL}));
  EXPECT_FALSE(process_exists(task->pid()));
  EXPECT_EQ(backend_.state->destroyed, 1);
}

TEST_F(ARunner, RefusesADeniedUidBeforeMakingAnything) {
  Runner runner(&backend_, spawner_, clock_, RunnerOptions{{::geteuid()}});
  try {
    runner.start(id_, {}, shell("true"));
    FAIL() << "a denied uid was started";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::permission);
    EXPECT_EQ(std::string(e.what()),
              "uid " + std::to_string(::geteuid()) + " is not allowed to run tasks (it is in task.denied_uids)");
  }
  EXPECT_TRUE(backend_.ids.empty());
}

TEST_F(ARunner, RefusesADeniedUidGivenAsTheTaskUser) {
  Runner runner(&backend_, spawner_, clock_, RunnerOptions{{4000123}});
  SpawnSpec spec = shell("true");
  spec.credentials = Credentials{4000123, 4000123, {}};
  EXPECT_THROW(runner.start(id_, {}, spec), Error);
  EXPECT_TRUE(backend_.ids.empty());
}

TEST_F(ARunner, RemovesTheCgroupWhenTheCommandCannotStart) {
  SpawnSpec spec = shell("");
  spec.argv = {"runscope-no-such-program"};
  EXPECT_THROW(runner_.start(id_, {}, spec), Error);
  ASSERT_TRUE(backend_.state);
  EXPECT_EQ(backend_.state->destroyed, 1);
}

// A spawner whose exec fails as the kernel's does when the new program's arguments and
// environment cannot be copied (E2BIG): too many for ARG_MAX, or too big for the task's memory.
class TooBigSpawner final : public Spawner {
 public:
  Process spawn(const SpawnSpec&, cgroup::TaskCgroup*) override {
    throw Error(ErrorKind::system, "cannot execute 'sh': Argument list too long", E2BIG);
  }
};

std::string start_error(Runner& runner, const TaskId& id, const cgroup::Limits& limits, const SpawnSpec& spec) {
  try {
    runner.start(id, limits, spec);
  } catch (const Error& e) {
    EXPECT_EQ(e.error_number(), E2BIG);
    return e.what();
  }
  return "started";
}

TEST_F(ARunner, NamesTheMemoryLimitAnExecDidNotFitInOnlyWhenTheCgroupReachedIt) {
  TooBigSpawner too_big;
  Runner runner(&backend_, too_big, clock_);
  cgroup::Limits limits;
  limits.memory_max = 1 << 20;
  backend_.stats.memory_peak = (1 << 20) - 4096;  // at the limit, less the charge that failed
  EXPECT_EQ(start_error(runner, id_, limits, shell("true")),
            "cannot execute 'sh': Argument list too long: the program's arguments and environment do not fit in "
            "the task's memory limit (1M)");
  EXPECT_EQ(backend_.state->destroyed, 1);
  backend_.stats.memory_peak = 200 << 10;  // far below: a real E2BIG, ARG_MAX
  EXPECT_EQ(start_error(runner, id_, limits, shell("true")), "cannot execute 'sh': Argument list too long");
  backend_.stats.memory_peak = 1 << 20;
  EXPECT_EQ(start_error(runner, id_, {}, shell("true")), "cannot execute 'sh': Argument list too long");  // no limit
  EXPECT_EQ(backend_.state->destroyed, 1);
}

TEST_F(ARunner, DestroyingARunningTaskKillsItAndRemovesItsCgroup) {
  pid_t pid = -1;
  {
    auto task = runner_.start(id_, {}, shell("exec sleep 30"));
    pid = task->pid();
  }
  EXPECT_FALSE(process_exists(pid));
  EXPECT_EQ(backend_.state->destroyed, 1);
}

class ARunnerWithoutCgroups : public ARunner {
 protected:
  // As `runscope exec --no-cgroups` does: the group's orphans come to us and are reaped by the
  // runner's cleanup instead of by a slow PID 1.
  void SetUp() override { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
  void TearDown() override { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
  Runner runner_{nullptr, spawner_, clock_};
};

TEST_F(ARunnerWithoutCgroups, RefusesLimits) {
  cgroup::Limits limits;
  limits.memory_max = 1 << 20;
  EXPECT_THROW(runner_.start(id_, limits, shell("true")), Error);
}

TEST_F(ARunnerWithoutCgroups, KillsTheProcessGroupWhenTheMainProcessEnds) {
  auto task = runner_.start(id_, {}, shell("sleep 30 & echo $!; exit 4"));
  EXPECT_EQ(task->wait(), (ExitStatus{false, 4}));
  auto child = std::stoi(read_file(dir_.path() / "out"));
  EXPECT_FALSE(process_exists(child)) << "background child " << child << " survived";
}

TEST_F(ARunnerWithoutCgroups, StopKillsTheWholeProcessGroup) {
  auto task = runner_.start(id_, {}, shell("trap '' TERM; sleep 30 & echo $!; wait"), KillPolicy{SIGTERM, 50ms});
  ASSERT_TRUE(wait_for_output("\n"));
  auto child = std::stoi(read_file(dir_.path() / "out"));
  EXPECT_EQ(task->stop(), (ExitStatus{true, SIGKILL}));
  EXPECT_FALSE(process_exists(child));
}

}  // namespace
}  // namespace runscope::driver
