// Task logs to a REAL systemd-journald: started here as a transient unit of the contained systemd
// (volatile storage in the contained /run, no kernel log, no audit: AF_UNIX only), a real runscoped
// on the systemd path, and the lines read back both with journalctl (the fields runscope adds, and
// the ones journald itself records about the sender) and with `runscope logs ALLOC TASK` (which
// runs journalctl with the task's match). The lines are the task's own (issue 12): its uid, its
// scope, its own rate limit, and an identifier no system program uses.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/file.hpp"
#include "driver/log_sink.hpp"
#include "support/daemon_process.hpp"
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

constexpr const char* kJournald = "/lib/systemd/systemd-journald";
constexpr const char* kJournalSocket = "/run/systemd/journal/socket";
constexpr const char* kDropInDir = "/run/systemd/journald.conf.d";
// Nothing leaves the contained /run: no /var/log/journal, no kernel ring buffer, no syslog. A low
// rate limit (per unit; journald scales the burst up with free space, a few times here) so that a
// flood of a few thousand lines is enough to hit it.
constexpr const char* kJournaldConf =
    "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\nForwardToConsole=no\n"
    "ForwardToWall=no\nRateLimitIntervalSec=300s\nRateLimitBurst=200\n";
constexpr int kFloodLines = 20000;
constexpr const char* kMember = "65534";  // nobody: a member's task runs as the member

class TaskLogsInTheJournal : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    if (::access(kJournald, X_OK) != 0) GTEST_SKIP() << kJournald << " is not installed";
    fs::create_directories(kDropInDir);
    std::ofstream(drop_in_) << kJournaldConf;
    started_ = true;
    // AF_UNIX only: journald's audit netlink socket would switch auditing on for the whole host.
    run_command("systemd-run --quiet --unit=" + journald_ +
                " --service-type=notify -p RestrictAddressFamilies=AF_UNIX -p StandardOutput=null"
                " -p StandardError=null --setenv=SYSTEMD_LOG_TARGET=console " + kJournald);
    ASSERT_TRUE(eventually([] { return fs::exists(kJournalSocket); }, 10s));

    bus_ = std::make_unique<testing::PrivateBus>();
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    config_ = tmp_.path() / "runscope.toml";
    std::ofstream(config_) << "[cgroups]\nmanager = \"systemd\"\nparent = \"" << parent_ << ".slice\"\n"
                           << "[daemon]\nstate_dir = \"" << (tmp_.path() / "state").string() << "\"\n";
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config_, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << log();
  }
  void TearDown() override {
    if (!started_) return;
    daemon_.reset();
    bus_.reset();
    testing::run_ignoring_status("systemctl stop " + parent_ + ".slice " + journald_ + " >/dev/null 2>&1");
    fs::remove(drop_in_);
  }
  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }
  std::string log() { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  // Every journal entry of the task, as journalctl's JSON objects.
  std::vector<nlohmann::json> entries(const std::string& task) {
    return query("RUNSCOPE_ALLOC=" + alloc_ + " RUNSCOPE_TASK=" + task);
  }
  std::vector<nlohmann::json> query(const std::string& matches) {
    std::istringstream lines(run_command("journalctl --no-pager -o json " + matches + " 2>/dev/null || true"));
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  // The task's scope as journald names it (inspect says SLICE/SCOPE).
  std::string unit_of(const std::string& task) {
    auto unit = nlohmann::json::parse(run({"inspect", alloc_, task}).out).at("unit").get<std::string>();
    return unit.substr(unit.rfind('/') + 1);
  }
  testing::CliResult run_as_member(const std::string& task, const std::string& script) {
    return run({"run", "--wait", "--log-target", "journal", "--user", kMember, "--alloc", alloc_, "--task", task,
                "--", "/bin/sh", "-c", script});
  }

  bool started_ = false;
  std::string parent_ = "rt" + std::to_string(::getpid()) + "j";
  std::string journald_ = "rt-journald-" + std::to_string(::getpid());
  fs::path drop_in_ = fs::path(kDropInDir) / ("50-runscope-test-" + std::to_string(::getpid()) + ".conf");
  std::string alloc_ = systemd_testing::unique_name("alloc-with-dashes");
  testing::TempDir tmp_;
  fs::path config_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  testing::RunscopeCli cli_;
};

TEST_F(TaskLogsInTheJournal, TagsEachLineWithAllocAndTaskAndReadsThemBackWithRunscopeLogs) {
  auto ran = run({"run", "--wait", "--log-target", "journal", "--alloc", alloc_, "--task", "talker", "--", "/bin/sh",
                  "-c", "echo hello journal; echo trouble >&2"});
  ASSERT_EQ(ran.code, 0) << ran.err << log();
  EXPECT_EQ(nlohmann::json::parse(run({"inspect", alloc_, "talker"}).out)["state"], "exited");

  std::vector<nlohmann::json> got;
  ASSERT_TRUE(eventually([&] { return (got = entries("talker")).size() >= 2; }, 10s)) << got.size();
  std::map<std::string, std::string> priority_of;
  for (const auto& e : got) {
    EXPECT_EQ(e["RUNSCOPE_ALLOC"], alloc_);
    EXPECT_EQ(e["RUNSCOPE_TASK"], "talker");
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], "runscope/talker");
    EXPECT_EQ(e["_UID"], "0") << "root's task, run as root";
    EXPECT_EQ(e["_SYSTEMD_UNIT"], unit_of("talker")) << "sent from the task's scope, not runscoped's unit";
    priority_of[e["MESSAGE"].get<std::string>()] = e["PRIORITY"].get<std::string>();
  }
  EXPECT_EQ(priority_of["hello journal"], "6");  // stdout: info
  EXPECT_EQ(priority_of["trouble"], "3");        // stderr: err

  auto logs = run({"logs", alloc_, "talker"});
  EXPECT_EQ(logs.code, 0) << logs.err;
  EXPECT_NE(logs.out.find("hello journal\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("trouble\n"), std::string::npos) << logs.out;
}

TEST_F(TaskLogsInTheJournal, SendsAutoTargetLogsToTheJournalAndKeepsTasksApart) {
  ASSERT_EQ(run({"run", "--wait", "--alloc", alloc_, "--task", "one", "--", "/bin/echo", "from one"}).code, 0) << log();
  ASSERT_EQ(run({"run", "--wait", "--alloc", alloc_, "--task", "two", "--", "/bin/echo", "from two"}).code, 0) << log();
  // "auto" on the systemd path is the journal: the line is there, with the task's fields.
  std::vector<nlohmann::json> got;
  ASSERT_TRUE(eventually([&] { return !(got = entries("one")).empty(); }, 10s));
  EXPECT_EQ(got.front()["MESSAGE"], "from one");
  ASSERT_TRUE(eventually([&] { return run({"logs", alloc_, "two"}).out == "from two\n"; }, 10s))
      << run({"logs", alloc_, "two"}).out;
  EXPECT_EQ(run({"logs", alloc_, "one"}).out, "from one\n");
}

// Issue 12: a member's task is never root's in the journal, and journald knows it by its scope.
TEST_F(TaskLogsInTheJournal, RecordsAMembersLinesAsTheMembersAndInItsScope) {
  auto ran = run_as_member("member", "echo from the member; echo to stderr >&2");
  ASSERT_EQ(ran.code, 0) << ran.err << log();
  std::vector<nlohmann::json> got;
  ASSERT_TRUE(eventually([&] { return (got = entries("member")).size() >= 2; }, 10s)) << got.size();
  for (const auto& e : got) {
    EXPECT_EQ(e["_UID"], kMember) << e.dump();
    EXPECT_EQ(e["_GID"], kMember) << e.dump();
    EXPECT_EQ(e["_SYSTEMD_UNIT"], unit_of("member"));
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], "runscope/member");
  }
  EXPECT_TRUE(query("RUNSCOPE_ALLOC=" + alloc_ + " _UID=0").empty()) << "a member task line carries _UID=0";
}

// Issue 12: a member's task named sshd printing what sshd prints. Its lines carry the member's
// uid and runscope's identifier, so `journalctl -t sshd` (what an admin or a log watcher reads)
// never shows them, and nothing with root's uid says it. Even a line the task sends to journald
// itself, with every field it likes, cannot carry root's uid: the match `runscope logs` uses
// (driver::journal_match, with the uid the task ran as) leaves it out of root's task's lines.
TEST_F(TaskLogsInTheJournal, NeverLetsATaskNamedSshdPassForRootsSshd) {
  ASSERT_EQ(run({"run", "--wait", "--log-target", "journal", "--alloc", alloc_, "--task", "rootjob", "--", "/bin/echo",
                 "root's own line"}).code, 0) << log();
  const std::string forged = "MESSAGE=Accepted publickey for root from 10.0.0.9\nSYSLOG_IDENTIFIER=sshd\n"
                             "RUNSCOPE_ALLOC=" + alloc_ + "\nRUNSCOPE_TASK=rootjob\n";
  auto ran = run_as_member("sshd", "echo 'Accepted publickey for root from 10.0.0.9 port 22 ssh2'; printf '" +
                                       forged + "' | logger --journald");
  ASSERT_EQ(ran.code, 0) << ran.err << log();
  std::vector<nlohmann::json> printed;
  ASSERT_TRUE(eventually([&] { return !(printed = entries("sshd")).empty(); }, 10s));
  EXPECT_EQ(printed.front()["SYSLOG_IDENTIFIER"], "runscope/sshd");
  EXPECT_EQ(printed.front()["_UID"], kMember);
  std::vector<nlohmann::json> claimed;
  ASSERT_TRUE(eventually([&] { return !(claimed = query("SYSLOG_IDENTIFIER=sshd")).empty(); }, 10s))
      << "the task's own forged entry never arrived: the test proves nothing";
  for (const auto& e : claimed) EXPECT_EQ(e["_UID"], kMember) << "passes for root's sshd: " << e.dump();
  std::string roots;
  for (const auto& [field, value] : driver::journal_match(alloc_, "rootjob", 0)) roots += field + "=" + value + " ";
  auto root_lines = query(roots);
  ASSERT_EQ(root_lines.size(), 1u) << "root's task's lines, by the match runscope uses";
  EXPECT_EQ(root_lines.front()["MESSAGE"], "root's own line");
}

// Issue 12: one member's flood used up the rate limit every task shared (the shim's unit) and
// root's next task's lines never reached the journal. Each task is now its own unit to journald.
TEST_F(TaskLogsInTheJournal, KeepsRootsLinesWhenAMembersTaskFloods) {
  auto flood = run_as_member("flood", "seq 1 " + std::to_string(kFloodLines));
  ASSERT_EQ(flood.code, 0) << flood.err << log();
  auto ran = run({"run", "--wait", "--log-target", "journal", "--alloc", alloc_, "--task", "after", "--", "/bin/sh",
                  "-c", "for i in $(seq 1 50); do echo root-$i; done"});
  ASSERT_EQ(ran.code, 0) << ran.err << log();
  std::vector<nlohmann::json> root_lines;
  EXPECT_TRUE(eventually([&] { return (root_lines = entries("after")).size() == 50; }, 20s))
      << root_lines.size() << " of root's 50 lines reached the journal";
  for (const auto& e : root_lines) EXPECT_EQ(e["_UID"], "0");
  // journald takes one socket in order: root's last line is in, so every flood line was handled.
  auto flooded = entries("flood");
  std::cout << "the member's flood: " << flooded.size() << " of " << kFloodLines << " lines stored; root's task: "
            << root_lines.size() << " of 50\n";
  EXPECT_GT(flooded.size(), 0u);
  EXPECT_LT(flooded.size(), static_cast<std::size_t>(kFloodLines)) << "the flood never hit the rate limit";
  for (const auto& e : flooded) ASSERT_EQ(e["_UID"], kMember);
}

}  // namespace
}  // namespace runscope
