// Supervisors outside the daemon's unit (issue 11 point 4), on the contained systemd: runscoped
// runs as a REAL service of that systemd, with the [Service] settings of the packaged
// units/runscoped.service (Restart=no, so the test decides when it comes back), on the systemd
// path. Each shim must live in a cgroup of its own in the supervisors' scope
// (<parent stem>\x2dsupervisors.scope, systemd/supervisor_home.hpp), so `systemctl kill -s KILL`
// (every process of the unit), `systemctl stop` with KillMode=process or KillMode=control-group,
// and an OOM kill inside the unit's cgroup (which holds the daemon alone) leave every shim and task
// running; a task that ended meanwhile keeps its true exit status after the restart; a shim's
// cgroup goes away with its task, and at recovery when no running task owns it. (The contained
// systemd has no memory controller: a real OOM kill is tested on the host's v1 cgroupfs,
// tests/host/supervisors_host_test.cpp.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/file.hpp"
#include "common/task_id.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"
#include "support/shell.hpp"
#include "systemd/contained.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using systemd_testing::eventually;
using systemd_testing::run_command;

constexpr int kEndsWith = 9;

std::string show(const std::string& unit, const std::string& property) {
  return trim(run_command("systemctl show -p " + property + " --value '" + unit + "'"));
}

pid_t parent_of(pid_t pid) {
  auto stat = read_file_if_exists("/proc/" + std::to_string(pid) + "/stat").value_or("");
  std::istringstream rest(stat.substr(stat.rfind(')') + 1));
  std::string state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0 && read_file_if_exists("/proc/" + std::to_string(pid) + "/stat"); }

// The [Service] settings of the packaged unit, as systemd-run properties (ExecStart and
// ExecReload are the test's own), with `overrides` replacing or adding keys.
std::string packaged_properties(const std::map<std::string, std::string>& overrides) {
  std::ifstream unit(fs::path(RUNSCOPE_SOURCE_DIR) / "units/runscoped.service");
  std::map<std::string, std::string> props;
  bool in_service = false;
  for (std::string line; std::getline(unit, line);) {
    if (line.starts_with("[")) in_service = line == "[Service]";
    auto eq = line.find('=');
    if (!in_service || line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    auto key = line.substr(0, eq);
    if (key != "ExecStart" && key != "ExecReload") props[key] = line.substr(eq + 1);
  }
  for (const auto& [k, v] : overrides) props[k] = v;
  std::string out;
  for (const auto& [k, v] : props) out += " -p " + k + "=" + v;
  return out;
}

class SupervisorsOfARunscopedUnit : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
#ifndef RUNSCOPED_BINARY
    GTEST_SKIP() << "runscoped was not built";
#else
    bus_ = std::make_unique<testing::PrivateBus>();
    config_ = tmp_.path() / "runscope.toml";
    std::ofstream(config_) << "[cgroups]\nmanager = \"systemd\"\nparent = \"" << parent_ << ".slice\"\n"
                           << "[daemon]\nstate_dir = \"" << state_dir().string() << "\"\n";
    gate_ = tmp_.path() / "gate";
    started_ = true;
#endif
  }
  void TearDown() override {
    if (!started_) return;
    testing::run_ignoring_status("systemctl stop " + unit_ + " >/dev/null 2>&1; systemctl reset-failed " + unit_ +
                                 " >/dev/null 2>&1; systemctl stop " + parent_ + ".slice >/dev/null 2>&1");
    bus_.reset();
  }

  fs::path state_dir() const { return tmp_.path() / "state"; }
  std::string log() const { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  std::string supervisors_slice() const { return parent_ + "-supervisors.slice"; }

  // runscoped as a service of this systemd, from the packaged unit's settings; returns when it
  // said READY=1 (systemd-run waits for the start job of a Type=notify service).
  void start_unit(const std::map<std::string, std::string>& overrides = {}) {
#ifdef RUNSCOPED_BINARY
    testing::run_ignoring_status("systemctl reset-failed " + unit_ + " >/dev/null 2>&1");
    auto props = packaged_properties(overrides);
    const auto out = (tmp_.path() / "daemon.log").string();
    run_command("systemd-run --quiet --unit=" + unit_ + props + " -p StandardOutput=append:" + out +
                " -p StandardError=append:" + out + " " + RUNSCOPED_BINARY + " --bus " + bus_->address() +
                " --config " + config_.string());
    ASSERT_EQ(show(unit_, "ActiveState"), "active") << log();
#endif
  }
  pid_t main_pid() const { return std::stoi(show(unit_, "MainPID")); }

  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }
  nlohmann::json inspect(const std::string& task) { return nlohmann::json::parse(run({"inspect", alloc_, task}).out); }

  // One task runs on; two wait for the gate, then one exits 9 and one dies of SIGTERM.
  void start_tasks() {
    const std::string wait = "while [ ! -e " + gate_.string() + " ]; do sleep 0.05; done; ";
    ASSERT_EQ(run({"run", "--alloc", alloc_, "--task", "long", "--", "/bin/sleep", "600"}).code, 0) << log();
    ASSERT_EQ(run({"run", "--alloc", alloc_, "--task", "ends", "--", "/bin/sh", "-c", wait + "exit 9"}).code, 0);
    ASSERT_EQ(run({"run", "--alloc", alloc_, "--task", "termed", "--", "/bin/sh", "-c", wait + "kill -TERM $$"}).code, 0);
    for (const char* t : {"long", "ends", "termed"}) {
      pid_t pid = inspect(t)["pid"].get<pid_t>();
      tasks_[t] = pid;
      shims_[t] = parent_of(pid);
    }
  }

  std::string supervisors_scope() const { return parent_ + "\\x2dsupervisors.scope"; }
  // The cgroup of a task's shim, as /proc/PID/cgroup shows it.
  std::string shim_cgroup(const std::string& task) const {
    return "/" + parent_ + ".slice/" + supervisors_slice() + "/" + supervisors_scope() + "/" +
           TaskId(alloc_, task).cgroup_name();
  }
  bool shim_cgroup_gone(const std::string& task) const {
    return !fs::exists(fs::path("/sys/fs/cgroup") / fs::path(shim_cgroup(task)).relative_path());
  }
  pid_t anchor() const {
    auto procs = trim(read_file_if_exists(fs::path("/sys/fs/cgroup") / (parent_ + ".slice") / supervisors_slice() /
                                          supervisors_scope() / "cgroup.procs")
                          .value_or(""));
    return procs.empty() ? 0 : std::stoi(procs);
  }

  // Each shim in a cgroup of its own in the supervisors' scope; the daemon's unit holds the daemon
  // alone, so nothing a kill of that unit (or an OOM kill inside it) can reach is a shim or a task.
  void expect_layout() {
    for (const auto& [task, shim] : shims_) {
      auto cg = systemd_testing::unified_line(read_file("/proc/" + std::to_string(shim) + "/cgroup"));
      EXPECT_EQ(cg, shim_cgroup(task)) << task;
      EXPECT_NE(cg, systemd_testing::unified_line(read_file("/proc/" + std::to_string(tasks_[task]) + "/cgroup")));
    }
    EXPECT_EQ(show(supervisors_scope(), "ActiveState"), "active");
    EXPECT_GT(anchor(), 0) << "no anchor keeps the supervisors' scope";
    auto unit_cg = show(unit_, "ControlGroup");
    auto procs = trim(read_file(fs::path("/sys/fs/cgroup") / fs::path(unit_cg).relative_path() / "cgroup.procs"));
    EXPECT_EQ(procs, std::to_string(main_pid())) << "the daemon's unit holds more than the daemon";
  }

  void expect_all_alive(const std::string& when) {
    for (const auto& [task, shim] : shims_) EXPECT_TRUE(alive(shim)) << "the shim of " << task << " " << when;
    EXPECT_TRUE(alive(tasks_["long"])) << "the long task " << when;
  }

  // The gate opens while no daemon runs; the two tasks end and their shims record it.
  void end_tasks_while_down() {
    EXPECT_NE(show(unit_, "ActiveState"), "active");
    std::ofstream(gate_).close();
    for (const char* t : {"ends", "termed"}) {
      auto record = state_dir() / "tasks" / TaskId(alloc_, t).cgroup_name() / "exit.json";
      EXPECT_TRUE(eventually([&] { return fs::exists(record); }, 30s)) << t << " left no exit record";
    }
  }

  // After the restart: the true statuses; the ended tasks' shim cgroups are gone, and the long
  // task's goes when it is stopped; the scope and its anchor stay for the next tasks.
  void expect_true_statuses_after_restart() {
    const pid_t kept = anchor();
    start_unit({{"Restart", "no"}});
    auto ends = inspect("ends");
    EXPECT_EQ(ends["state"], nlohmann::json("exited")) << ends.dump() << log();
    EXPECT_EQ(ends["exit_code"], kEndsWith) << ends.dump();
    EXPECT_EQ(inspect("termed")["signal"], SIGTERM) << inspect("termed").dump();
    EXPECT_EQ(inspect("long")["state"], nlohmann::json("running"));
    EXPECT_EQ(inspect("long")["pid"], tasks_["long"]);
    for (const char* t : {"ends", "termed"}) EXPECT_TRUE(shim_cgroup_gone(t)) << t;
    ASSERT_EQ(run({"stop", "--timeout", "5s", alloc_, "long"}).code, 0) << log();
    EXPECT_TRUE(shim_cgroup_gone("long")) << "the shim's cgroup outlived its task";
    EXPECT_EQ(anchor(), kept) << "the supervisors' scope was made again instead of reused";
  }

  bool started_ = false;
  std::string parent_ = "rt" + std::to_string(::getpid()) + "v";
  std::string unit_ = systemd_testing::unique_name("rt-runscoped") + ".service";
  std::string alloc_ = systemd_testing::unique_name("sup");
  testing::TempDir tmp_;
  fs::path config_, gate_;
  std::unique_ptr<testing::PrivateBus> bus_;
  testing::RunscopeCli cli_;
  std::map<std::string, pid_t> tasks_, shims_;
};

TEST_F(SupervisorsOfARunscopedUnit, SurviveSystemctlKillOfEveryProcessOfTheUnit) {
  start_unit({{"Restart", "no"}});
  start_tasks();
  expect_layout();
  run_command("systemctl kill -s KILL " + unit_);  // --kill-whom=all, the default
  ASSERT_TRUE(eventually([&] { return show(unit_, "ActiveState") == "failed"; }, 30s)) << show(unit_, "ActiveState");
  expect_all_alive("after systemctl kill -s KILL");
  end_tasks_while_down();
  expect_true_statuses_after_restart();
}

TEST_F(SupervisorsOfARunscopedUnit, SurviveAStopWithKillModeControlGroup) {
  start_unit({{"Restart", "no"}, {"KillMode", "control-group"}});
  start_tasks();
  expect_layout();
  run_command("systemctl stop " + unit_);
  expect_all_alive("after systemctl stop with KillMode=control-group");
  end_tasks_while_down();
  expect_true_statuses_after_restart();
}

// A shim an older runscoped left in its own unit (moved back there by hand here) is taken home by
// the next daemon's recovery.
TEST_F(SupervisorsOfARunscopedUnit, TakesAShimLeftInTheDaemonsUnitHomeAtRecovery) {
  start_unit({{"Restart", "no"}});
  ASSERT_EQ(run({"run", "--alloc", alloc_, "--task", "long", "--", "/bin/sleep", "600"}).code, 0) << log();
  const pid_t shim = parent_of(inspect("long")["pid"].get<pid_t>());
  const auto unit_procs = fs::path("/sys/fs/cgroup") / fs::path(show(unit_, "ControlGroup")).relative_path() /
                          "cgroup.procs";
  write_file(unit_procs, std::to_string(shim));
  ASSERT_NE(systemd_testing::unified_line(read_file("/proc/" + std::to_string(shim) + "/cgroup")), shim_cgroup("long"));
  run_command("systemctl restart " + unit_);
  EXPECT_EQ(systemd_testing::unified_line(read_file("/proc/" + std::to_string(shim) + "/cgroup")), shim_cgroup("long"))
      << log();
  EXPECT_EQ(inspect("long")["state"], nlohmann::json("running"));
  EXPECT_EQ(run({"stop", "--timeout", "5s", alloc_, "long"}).code, 0);
}

// The packaged KillMode=process; and a shim's cgroup that no task owns (a shim of a lost state,
// here a stand-in) is killed and removed at recovery.
TEST_F(SupervisorsOfARunscopedUnit, SurviveAStopOfThePackagedUnitAndRecoveryRemovesStrayShimCgroups) {
  start_unit({{"Restart", "no"}});
  start_tasks();
  expect_layout();
  run_command("systemctl stop " + unit_);
  expect_all_alive("after systemctl stop");
  systemd_testing::HeldChild stray;
  const auto stray_dir = fs::path("/sys/fs/cgroup") / fs::path(shim_cgroup("nobody")).relative_path();
  fs::create_directory(stray_dir);
  write_file(stray_dir / "cgroup.procs", std::to_string(stray.pid()));
  end_tasks_while_down();
  expect_true_statuses_after_restart();
  EXPECT_TRUE(stray.reap(10s)) << "the stray shim cgroup's process was not killed";
  EXPECT_FALSE(fs::exists(stray_dir));
  // No task runs any more: the daemon stops the supervisors' scope as it stops (as a package
  // removal does), and no anchor lingers.
  const pid_t kept = anchor();
  ASSERT_GT(kept, 0);
  run_command("systemctl stop " + unit_);
  EXPECT_TRUE(eventually([&] { return !alive(kept); }, 10s)) << "the anchor outlived every task";
  EXPECT_NE(show(supervisors_scope(), "ActiveState"), "active");
}

}  // namespace
}  // namespace runscope
