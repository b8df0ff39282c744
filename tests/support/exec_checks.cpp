#include "support/exec_checks.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/held_child.hpp"

namespace runscope::testing {
namespace {

constexpr auto kBudget = std::chrono::seconds(20);

// Runs in the forked child: only async-signal-safe calls until exec.
[[noreturn]] void exec_in_own_group(const std::vector<char*>& argv, const std::vector<char*>& envp, int out, int err) {
  ::setpgid(0, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::execve(argv[0], argv.data(), envp.data());
  ::_exit(127);
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<pid_t> read_pids(const std::string& file) {
  std::vector<pid_t> pids;
  std::ifstream in(file);
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

// exec writes the task's main pid into its registry entry once the task runs, which may be after
// the task's first output line; a --no-cgroups task is found by that pid alone (docs/cli.md).
bool main_pid_registered(const RunscopeCli& cli) {
  std::error_code ec;
  for (const auto& file : std::filesystem::directory_iterator(cli.registry(), ec)) {
    auto j = nlohmann::json::parse(read_file_if_exists(file.path()).value_or(""), nullptr, false);
    if (j.is_object() && j.value("main_pid", 0) > 0) return true;
  }
  return false;
}

std::string name_of(int sig) { return std::string("SIG") + ::sigabbrev_np(sig); }

}  // namespace

ShellJob::ShellJob(RunscopeCli& cli, const std::vector<std::string>& args) {
  std::vector<std::string> argv{RUNSCOPE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  auto env = cli.child_env();
  auto argv_p = pointers(argv), env_p = pointers(env);
  cli.clear_output();
  const int out = ::open(cli.out_path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  const int err = ::open(cli.err_path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  int report[2];
  if (out < 0 || err < 0 || ::pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error("ShellJob: set-up failed");
  leader_ = ::fork();
  if (leader_ == 0) {
    // The shell stand-in: a session of its own, runscope in a group of its own within it.
    ::setsid();
    pid_t child = ::fork();
    if (child == 0) exec_in_own_group(argv_p, env_p, out, err);
    ::setpgid(child, child);
    ssize_t ignored = ::write(report[1], &child, sizeof child);
    (void)ignored;
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  ::close(report[1]);
  if (::read(report[0], &runscope_, sizeof runscope_) != sizeof runscope_) runscope_ = -1;
  ::close(report[0]);
  ::close(out);
  ::close(err);
}

ShellJob::~ShellJob() {
  if (leader_ <= 0) return;
  if (runscope_ > 0) ::kill(runscope_, SIGKILL);
  ::kill(leader_, SIGKILL);
  ::waitpid(leader_, nullptr, 0);
}

int ShellJob::wait() {
  int status = 0;
  while (::waitpid(leader_, &status, 0) < 0 && errno == EINTR) {
  }
  leader_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return '?';
  auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

std::vector<std::string> ExecUnderTest::args(const std::vector<std::string>& options, const std::string& script) const {
  std::vector<std::string> all = globals;
  all.push_back("exec");
  all.insert(all.end(), exec.begin(), exec.end());
  all.insert(all.end(), options.begin(), options.end());
  all.insert(all.end(), {"--", "sh", "-c", script});
  return all;
}

std::vector<std::string> ExecUnderTest::command(const std::vector<std::string>& words) const {
  std::vector<std::string> all = globals;
  all.insert(all.end(), words.begin(), words.end());
  return all;
}

std::string ExecUnderTest::pids_file(const std::string& name) const { return (cli.dir() / (name + ".pids")).string(); }

void check_stop_signal_stops_gracefully(const ExecUnderTest& t, int sig) {
  SCOPED_TRACE(name_of(sig));
  auto proc = t.cli.start(t.args({}, "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(t.cli.wait_for_output("ready")) << t.cli.err();
  ASSERT_TRUE(proc.signal(sig));
  EXPECT_EQ(proc.reap().shell_code(), 7) << t.cli.err();
  EXPECT_NE(t.cli.out().find("got-term"), std::string::npos) << t.cli.out();
  EXPECT_NE(t.cli.err().find("received " + name_of(sig) + ": stopping task"), std::string::npos) << t.cli.err();
}

void check_second_stop_signal_kills_at_once(const ExecUnderTest& t) {
  const auto pids = t.pids_file("second-stop");
  auto proc = t.cli.start(
      t.args({"--kill-timeout", "10m"}, "trap '' TERM; echo $$ > " + pids + "; echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(t.cli.wait_for_output("ready")) << t.cli.err();
  ASSERT_TRUE(proc.signal(SIGTERM));
  ASSERT_TRUE(t.cli.wait_for_error("received SIGTERM: stopping task")) << t.cli.err();
  ASSERT_TRUE(proc.signal(SIGINT));
  // Without the second signal this would take the ten-minute grace period.
  auto status = proc.wait(Deadline(system_clock(), kBudget));
  ASSERT_TRUE(status.has_value()) << "the second stop signal did not kill the task: " << t.cli.err();
  EXPECT_EQ(status->shell_code(), 128 + SIGKILL) << t.cli.err();
  for (pid_t pid : read_pids(pids)) EXPECT_FALSE(process_alive(pid)) << pid;
}

void check_signals_are_forwarded(const ExecUnderTest& t, const std::vector<int>& sigs) {
  std::string traps;
  for (int sig : sigs) traps += "trap 'echo got-" + std::to_string(sig) + "' " + std::to_string(sig) + "; ";
  auto proc = t.cli.start(t.args({}, traps + "echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(t.cli.wait_for_output("ready")) << t.cli.err();
  for (int sig : sigs) {
    ASSERT_TRUE(proc.signal(sig)) << name_of(sig);
    EXPECT_TRUE(t.cli.wait_for_output("got-" + std::to_string(sig) + "\n")) << name_of(sig) << " was not forwarded\n"
                                                                             << t.cli.out() << t.cli.err();
  }
  // Still running and still served: a stop signal ends it as usual (the task dies of TERM).
  ASSERT_TRUE(proc.signal(SIGTERM));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGTERM) << t.cli.err();
}

void check_job_control_dropped_when_orphaned(const ExecUnderTest& t, int sig) {
  SCOPED_TRACE(name_of(sig));
  const auto pids = t.pids_file("orphaned-job");
  auto proc = t.cli.start(t.args({}, "trap 'echo got-usr1' USR1; echo $$ > " + pids +
                                         "; echo ready; while :; do sleep 0.05; done"));
  ASSERT_TRUE(t.cli.wait_for_output("ready")) << t.cli.err();
  const pid_t task = read_pids(pids).at(0);
  ASSERT_TRUE(proc.signal(sig));
  // A later signal is served, so the first was handled: the task did not stop.
  ASSERT_TRUE(proc.signal(SIGUSR1));
  EXPECT_TRUE(t.cli.wait_for_output("got-usr1")) << t.cli.err();
  EXPECT_NE(process_state(task), 'T');
  EXPECT_NE(process_state(proc.pid()), 'T');
  ASSERT_TRUE(proc.signal(SIGTERM));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGTERM) << t.cli.err();
}

void check_job_control_stops_and_resumes(const ExecUnderTest& t, int sig) {
  SCOPED_TRACE(name_of(sig));
  const auto pids = t.pids_file("shell-job");
  // The task waits in wait(), not in a loop of short commands: a shell stopped halfway through
  // starting one (vfork) shows 'D' until its child runs on, so 'T' could not be asserted.
  ShellJob job(t.cli, t.args({}, "echo $$ > " + pids + "; sleep 300 & echo $! >> " + pids + "; echo ready; wait"));
  ASSERT_GT(job.pid(), 0);
  ASSERT_TRUE(t.cli.wait_for_output("ready")) << t.cli.err();
  const auto task = read_pids(pids);
  ASSERT_EQ(task.size(), 2u);
  ASSERT_EQ(::kill(job.pid(), sig), 0);
  EXPECT_TRUE(wait_until([&] { return process_state(job.pid()) == 'T'; }, kBudget))
      << "runscope did not stop: " << t.cli.err();
  for (pid_t pid : task) {  // SIGSTOP lands when each next runs
    EXPECT_TRUE(wait_until([&] { return process_state(pid) == 'T'; }, kBudget)) << "task process " << pid << " did not stop";
  }
  ASSERT_EQ(::kill(job.pid(), SIGCONT), 0);  // the shell's fg
  EXPECT_TRUE(wait_until([&] { return process_state(job.pid()) != 'T'; }, kBudget));
  for (pid_t pid : task) {
    EXPECT_TRUE(wait_until([&] { return process_state(pid) != 'T'; }, kBudget)) << "task process " << pid;
  }
  ASSERT_EQ(::kill(job.pid(), SIGTERM), 0);
  EXPECT_EQ(job.wait(), 128 + SIGTERM) << t.cli.err();
  for (pid_t pid : task) EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, kBudget)) << pid;
}

void check_sigkill_leaves_an_orphan_that_orphans_ends(const ExecUnderTest& t, const std::string& alloc) {
  const auto pids = t.pids_file("orphan");
  auto proc = t.cli.start(t.args({"--alloc", alloc, "--task", "orphan"},
                                 "echo $$ > " + pids + "; sleep 300 & echo $! >> " + pids + "; echo ready; wait"));
  ASSERT_TRUE(t.cli.wait_for_output("ready")) << t.cli.err();
  ASSERT_TRUE(wait_until([&] { return main_pid_registered(t.cli); }, kBudget));
  ASSERT_TRUE(proc.signal(SIGKILL));
  EXPECT_EQ(proc.reap().shell_code(), 128 + SIGKILL);
  const auto task = read_pids(pids);
  ASSERT_EQ(task.size(), 2u);
  for (pid_t pid : task) EXPECT_TRUE(process_alive(pid)) << "nothing catches SIGKILL: the task is still there";

  auto listed = t.cli.run(t.command({"orphans", "--json"}));
  ASSERT_EQ(listed.code, 0) << listed.err;
  auto j = nlohmann::json::parse(listed.out);
  ASSERT_EQ(j.size(), 1u) << listed.out;
  EXPECT_EQ(j[0]["alloc"], alloc);
  EXPECT_EQ(j[0]["task"], "orphan");
  EXPECT_GE(j[0]["processes"].get<int>(), 1) << listed.out;

  auto ended = t.cli.run(t.command({"orphans", "--kill"}));
  EXPECT_EQ(ended.code, 0) << ended.err;
  for (pid_t pid : task) EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, kBudget)) << pid;
  auto after = t.cli.run(t.command({"orphans", "--json"}));
  EXPECT_EQ(nlohmann::json::parse(after.out).size(), 0u) << after.out;
  // The name is free again.
  auto again = t.cli.run(t.args({"--alloc", alloc, "--task", "orphan"}, "exit 4"));
  EXPECT_EQ(again.code, 4) << again.err;
}

}  // namespace runscope::testing
