// Fault: a task's state file (task.json) truncated, emptied, overwritten with random bytes or
// deleted while runscoped is stopped and its tasks run (some of them ending meanwhile). The
// restarted daemon says so in its log, rebuilds each task from launch.json and its cgroup, loses
// none, and keeps the exit codes the shims recorded. A task whose whole state folder is gone has
// no identity left: its cgroup is removed as unowned, nothing of it survives.
#include <gtest/gtest.h>

#include <fstream>

#include "common/file.hpp"
#include "daemon/task_record.hpp"
#include "driver/shim_protocol.hpp"
#include "faults/fault_harness.hpp"
#include "support/held_child.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Case {
  std::string damage;  // intact | truncated | empty | garbage | deleted
  TaskId runner, ender;
  int code;
  pid_t runner_pid = 0;
};

void damage(const fs::path& file, const std::string& how, std::mt19937_64& rng) {
  if (how == "truncated") {
    fs::resize_file(file, fs::file_size(file) / 2);
  } else if (how == "empty") {
    fs::resize_file(file, 0);
  } else if (how == "garbage") {
    std::string bytes(512, '\0');
    for (auto& b : bytes) b = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  } else if (how == "deleted") {
    fs::remove(file);
  }
}

TEST(ADamagedStateFile, IsReportedAndTheTaskRebuiltFromItsCgroupWithItsExitCode) {
  if (auto why = testing::fault_skip_reason()) GTEST_SKIP() << *why;
  std::mt19937_64 rng(testing::fault_seed());
  testing::become_subreaper();
  testing::TempDir tmp;
  testing::FaultDaemon daemon("state");
  testing::Bystanders bystanders(daemon.env(), "state");
  daemon.start();
  auto& client = daemon.client();
  fs::path go = tmp.path() / "go";
  std::vector<Case> cases;
  int code = 3;
  for (std::string how : {"intact", "truncated", "empty", "garbage", "deleted"}) {
    Case c{how, TaskId("st", how + "-run"), TaskId("st", how + "-end"), code++};
    client.start(testing::shell_spec("st", c.runner.task(), "exec sleep 600").dump());
    client.start(testing::shell_spec("st", c.ender.task(), "while [ ! -e " + go.string() +
                                     " ]; do sleep 0.02; done; exit " + std::to_string(c.code)).dump());
    c.runner_pid = client.inspect(c.runner)["pid"].get<pid_t>();
    cases.push_back(c);
  }
  // A journal task's shim has a second child in the task's cgroup, its journal forwarder: the
  // rebuild must take the task as the main process, never the forwarder.
  TaskId journal("st", "journal-run");
  auto journal_spec = testing::shell_spec("st", journal.task(), "exec sleep 600");
  journal_spec["log"] = {{"target", "journal"}};
  client.start(journal_spec.dump());
  const auto journal_pid = client.inspect(journal)["pid"].get<pid_t>();
  TaskId gone("st", "folder-gone");
  client.start(testing::shell_spec("st", gone.task(), "exec sleep 600").dump());
  auto gone_pid = testing::identify(client.inspect(gone)["pid"].get<pid_t>());
  ASSERT_TRUE(gone_pid);

  daemon.terminate();
  for (const auto& c : cases) {
    for (const auto& id : {c.runner, c.ender}) damage(daemon.task_dir(id) / daemon::kTaskFile, c.damage, rng);
  }
  damage(daemon.task_dir(journal) / daemon::kTaskFile, "garbage", rng);
  fs::remove_all(daemon.task_dir(gone));
  std::ofstream(go) << "go";
  for (const auto& c : cases) {
    EXPECT_TRUE(testing::wait_until([&] { return fs::exists(daemon.task_dir(c.ender) / driver::kExitFile); }, 30s));
  }
  daemon.start();

  auto states = testing::listed(client);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.damage);
    EXPECT_EQ(states[c.runner], "running");
    EXPECT_EQ(client.inspect(c.runner)["pid"], c.runner_pid);
    auto ended = client.inspect(c.ender);
    EXPECT_EQ(ended["state"], "exited") << ended.dump();
    EXPECT_EQ(ended["exit_code"], c.code) << ended.dump();
    bool rebuilt = daemon.log().find("rebuilt task " + c.runner.display()) != std::string::npos;
    EXPECT_EQ(rebuilt, c.damage != "intact") << daemon.log();
    EXPECT_NO_THROW(daemon::read_task_record(daemon.task_dir(c.runner))) << "the rebuilt state was not saved";
  }
  EXPECT_EQ(states[journal], "running");
  EXPECT_EQ(client.inspect(journal)["pid"], journal_pid) << "the forwarder was taken for the task";
  client.stop(journal, 2s);
  EXPECT_FALSE(testing::process_alive(journal_pid));
  EXPECT_EQ(states.count(gone), 0u);
  EXPECT_FALSE(gone_pid->alive()) << "the task whose state folder is gone survived in an unowned cgroup";
  EXPECT_NE(daemon.log().find("removed cgroup " + gone.cgroup_name()), std::string::npos) << daemon.log();

  for (const auto& c : cases) {
    client.stop(c.runner, 2s);
    EXPECT_EQ(client.inspect(c.runner)["state"], "killed");
    EXPECT_FALSE(testing::process_alive(c.runner_pid));
  }
  EXPECT_TRUE(testing::wait_until([&] { return daemon.cgroups().empty(); }, 10s)) << "cgroups left";
  testing::reap_zombies();
  EXPECT_EQ(bystanders.disturbed(), std::vector<std::string>{});
}

}  // namespace
}  // namespace runscope
