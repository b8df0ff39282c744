// Supervisors outside the daemon's cgroup, on this host's real v1 cgroupfs (issue 11 point 4): a
// real runscoped runs in cgroups of its own (a service's stand-in) and is killed the way a service
// manager kills a unit, or by the kernel's OOM killer; every shim and task keeps running, and a
// task that ended while no daemon ran is reported with its true status after the restart.
// The daemon's cgroup is killed as systemd kills a unit: everything in it and below it, in every
// hierarchy but memory, where runscope nests beneath the daemon's own memory cgroup (the machine's
// rule, docs/cgroupfs.md) and only the processes in the daemon's own folder are killed. The tasks'
// parent is absolute, like the v1 default "/runscope".
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cgroup/util.hpp"
#include "cgroup/v1_backend.hpp"
#include "common/file.hpp"
#include "cpuset/topology.hpp"
#include "support/daemon_process.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kEndsWith = 9;

pid_t parent_of(pid_t pid) {
  auto stat = read_file_if_exists("/proc/" + std::to_string(pid) + "/stat").value_or("");
  std::istringstream rest(stat.substr(stat.rfind(')') + 1));
  std::string state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

std::vector<pid_t> procs_of(const fs::path& dir) {
  std::istringstream in(read_file_if_exists(dir / "cgroup.procs").value_or(""));
  std::vector<pid_t> out;
  for (pid_t p; in >> p;) out.push_back(p);
  return out;
}

class SupervisorsOnCgroupfs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    testing::become_subreaper();  // shims orphaned by the killed daemon are reaped here
    service_env_ = testing::make_v1_env("svc");
    service_backend_ = service_env_.make_backend(clock_);
    cgroup::Limits limits;
    limits.cpuset = cpuset::Topology::read().online();  // a cpuset folder of its own too
    service_ = service_backend_->create(TaskId("svc", "runscoped"), limits);
    // The tasks' parent: absolute, so outside the service's cgroups but in memory (nested there).
    tasks_env_ = service_env_;
    tasks_env_.parent = service_env_.parent + "-tasks";
    for (auto& [controller, path] : tasks_env_.own) path = controller == "memory" ? service_dir("memory") : "/";
    bus_ = std::make_unique<testing::PrivateBus>();
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    config_ = tmp_.path() / "runscope.toml";
    std::ofstream(config_) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"/" << tasks_env_.parent << "\"\n"
                           << "[daemon]\nstate_dir = \"" << state_dir().string() << "\"\n";
    gate_ = tmp_.path() / "gate";
    ready_ = true;
  }
  void TearDown() override {
    if (!ready_) return;
    daemon_.reset();
    bus_.reset();
    tasks_env_.remove_parent();
    service_->disown();
    service_.reset();
    service_env_.remove_parent();
    testing::reap_zombies();
  }

  // The service's folder in `controller`'s hierarchy, relative to its mount.
  std::string service_dir(const std::string& controller) const {
    return (fs::path(service_env_.own.at(controller)) / service_env_.parent / "svc-runscoped").string();
  }
  fs::path mount_of(const std::string& controller) const { return service_env_.layout.v1_mounts.at(controller); }
  fs::path state_dir() const { return tmp_.path() / "state"; }

  void start_daemon() {
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config_, tmp_.path() / "daemon.log",
                                                       *notify_, std::vector<std::string>{}, service_.get());
    ASSERT_TRUE(notify_->wait_for("READY=1", 60s)) << log();
  }
  std::string log() const { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }
  nlohmann::json inspect(const std::string& task) { return nlohmann::json::parse(run({"inspect", "sv", task}).out); }

  // Three tasks: one runs on; two wait for the gate, then one exits 9 and one dies of SIGTERM.
  void start_tasks() {
    const std::string wait = "while [ ! -e " + gate_.string() + " ]; do sleep 0.05; done; ";
    ASSERT_EQ(run({"run", "--alloc", "sv", "--task", "long", "--", "/bin/sleep", "600"}).code, 0) << log();
    ASSERT_EQ(run({"run", "--alloc", "sv", "--task", "ends", "--", "/bin/sh", "-c", wait + "exit 9"}).code, 0) << log();
    ASSERT_EQ(run({"run", "--alloc", "sv", "--task", "termed", "--", "/bin/sh", "-c", wait + "kill -TERM $$"}).code, 0);
    for (const char* t : {"long", "ends", "termed"}) {
      pid_t pid = inspect(t)["pid"].get<pid_t>();
      tasks_.push_back(pid);
      shims_.push_back(parent_of(pid));
    }
  }

  // Every shim lives in <parent>/supervisors in every hierarchy, none in the daemon's cgroup.
  void expect_shims_home() {
    for (pid_t shim : shims_) {
      auto seen = cgroup::parse_proc_cgroup(read_file("/proc/" + std::to_string(shim) + "/cgroup"));
      for (const char* c : cgroup::kV1TaskControllers) {
        if (!service_env_.layout.v1_mounts.count(c)) continue;
        auto want = fs::path(tasks_env_.own.at(c)) / tasks_env_.parent / "supervisors";
        EXPECT_EQ(seen[c], want.string()) << "shim " << shim << " in " << c;
      }
    }
  }

  // SIGKILLs everything in the service's cgroups, as a service manager ends a unit, until none is
  // left; returns every pid it killed.
  std::set<pid_t> kill_the_service() {
    std::set<pid_t> killed;
    auto sweep = [&] {
      bool any = false;
      for (const auto& [controller, mount] : service_env_.layout.v1_mounts) {
        if (!service_env_.own.count(controller)) continue;
        fs::path dir = mount / fs::path(service_dir(controller)).relative_path();
        if (!fs::is_directory(dir)) continue;
        std::vector<fs::path> dirs{dir};
        if (controller != "memory") {
          std::error_code ec;
          for (const auto& e : fs::recursive_directory_iterator(dir, ec))
            if (e.is_directory()) dirs.push_back(e.path());
        }
        for (const auto& d : dirs) {
          for (pid_t pid : procs_of(d)) {
            any = true;
            killed.insert(pid);
            ::kill(pid, SIGKILL);
          }
        }
      }
      return !any;
    };
    EXPECT_TRUE(testing::wait_until(sweep, 30s)) << "the service's cgroups did not empty";
    daemon_->process().reap();
    daemon_.reset();
    return killed;
  }

  void expect_all_alive(const std::string& when) {
    for (pid_t p : shims_) EXPECT_TRUE(testing::process_alive(p)) << "shim " << p << " " << when;
    EXPECT_TRUE(testing::process_alive(tasks_[0])) << "the long task " << when;
  }

  // The gate opens while no daemon runs; the two tasks end and their shims record it.
  void end_tasks_while_down() {
    std::ofstream(gate_).close();
    for (const char* t : {"ends", "termed"}) {
      auto record = state_dir() / "tasks" / TaskId("sv", t).cgroup_name() / "exit.json";
      EXPECT_TRUE(testing::wait_until([&] { return fs::exists(record); }, 30s)) << t << " left no exit record";
    }
  }

  void expect_true_statuses_after_restart() {
    start_daemon();
    auto ends = inspect("ends");
    EXPECT_EQ(ends["state"], nlohmann::json("exited")) << ends.dump() << log();
    EXPECT_EQ(ends["exit_code"], kEndsWith) << ends.dump();
    auto termed = inspect("termed");
    EXPECT_EQ(termed["signal"], SIGTERM) << termed.dump();
    auto long_task = inspect("long");
    EXPECT_EQ(long_task["state"], nlohmann::json("running")) << long_task.dump();
    EXPECT_EQ(long_task["pid"], tasks_[0]);
    EXPECT_EQ(run({"stop", "--timeout", "5s", "sv", "long"}).code, 0);
  }

  bool ready_ = false;
  SteadyClock clock_;
  testing::V1Env service_env_, tasks_env_;
  std::unique_ptr<cgroup::Backend> service_backend_;
  std::unique_ptr<cgroup::TaskCgroup> service_;
  testing::TempDir tmp_;
  fs::path config_, gate_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::RunscopeCli cli_;
  std::vector<pid_t> tasks_, shims_;
};

TEST_F(SupervisorsOnCgroupfs, SurviveAKillOfEverythingInTheDaemonsCgroupAndKeepTrueExitStatuses) {
  start_daemon();
  start_tasks();
  expect_shims_home();
  const pid_t daemon = daemon_->process().pid();
  auto killed = kill_the_service();
  EXPECT_TRUE(killed.count(daemon)) << "the kill did not reach the daemon";
  for (pid_t p : shims_) EXPECT_FALSE(killed.count(p)) << "shim " << p << " was in the daemon's cgroup";
  for (pid_t p : tasks_) EXPECT_FALSE(killed.count(p)) << "task " << p << " was in the daemon's cgroup";
  expect_all_alive("after the daemon's cgroup was killed");
  end_tasks_while_down();
  expect_true_statuses_after_restart();
}

// A helper in the daemon's memory cgroup allocates past its limit, a MiB at a time, until the
// daemon is gone (so there is one OOM kill, not a second one picking among shims and tasks). The
// kernel's OOM killer picks the daemon: its oom_score_adj is raised to 1000 once the tasks are
// started, so they don't inherit it (lowering the helper's instead needs CAP_SYS_RESOURCE). The
// helper is a shell, exec'd: a fork of this test binary counted the binary's pages it shared
// (60 MiB after the suites before this one) in its resident size, which outweighed the daemon's
// 1000 (a share of the limit) and made the helper the victim. Exits 0 once the daemon is a
// zombie or gone, 3 if 512 MiB did not get there, 100 if it could not join.
[[noreturn]] void exec_allocator(const std::string& tasks_file, pid_t daemon) {
  static const char* const kScript =
      "echo $$ > \"$1\" || exit 100\n"
      "s= i=0\n"
      "while [ $i -lt 512 ] && [ -e /proc/$2 ] && ! grep -q '^State:[[:space:]]*[ZX]' /proc/$2/status; do\n"
      "  s=\"$s$(head -c 1048576 /dev/zero | tr '\\0' x)\"\n"
      "  i=$((i + 1))\n"
      "done\n"
      "[ $i -lt 512 ] || exit 3\n";
  const std::string pid = std::to_string(daemon);
  ::execl("/bin/sh", "sh", "-c", kScript, "sh", tasks_file.c_str(), pid.c_str(), static_cast<char*>(nullptr));
  ::_exit(127);
}

TEST_F(SupervisorsOnCgroupfs, SurviveTheKernelOomKillingTheDaemon) {
  start_daemon();
  start_tasks();
  const pid_t daemon = daemon_->process().pid();
  write_file("/proc/" + std::to_string(daemon) + "/oom_score_adj", "1000");
  const fs::path memcg = mount_of("memory") / fs::path(service_dir("memory")).relative_path();
  auto usage = std::stoull(trim(read_file(memcg / "memory.usage_in_bytes")));
  write_file(memcg / "memory.limit_in_bytes", std::to_string(usage + (16 << 20)));
  const std::string tasks_file = (memcg / "tasks").string();
  pid_t helper = ::fork();
  if (helper == 0) exec_allocator(tasks_file, daemon);
  ASSERT_GT(helper, 0);
  SteadyClock clock;
  auto status = daemon_->process().wait(Deadline(clock, 60s));
  int helper_status = 0;
  if (!status) ::kill(helper, SIGKILL);
  ::waitpid(helper, &helper_status, 0);
  const auto oom = read_file(memcg / "memory.oom_control");
  write_file(memcg / "memory.limit_in_bytes", "-1");
  ASSERT_TRUE(status) << "the OOM killer did not end the daemon; helper status " << helper_status << ", "
                      << oom << "failcnt " << read_file(memcg / "memory.failcnt");
  EXPECT_TRUE(status->signaled && status->value == SIGKILL);
  EXPECT_GE(cgroup::cg_parse_keyed(oom)["oom_kill"], 1U) << "not an OOM kill: " << oom;
  // The helper saw the daemon die, or (the daemon's memory not yet freed) was the next OOM victim.
  EXPECT_TRUE((WIFEXITED(helper_status) && WEXITSTATUS(helper_status) == 0) ||
              (WIFSIGNALED(helper_status) && WTERMSIG(helper_status) == SIGKILL))
      << "helper status " << helper_status;
  daemon_.reset();
  expect_all_alive("after the OOM killer ended the daemon");
  end_tasks_while_down();
  expect_true_statuses_after_restart();
}

}  // namespace
}  // namespace runscope
