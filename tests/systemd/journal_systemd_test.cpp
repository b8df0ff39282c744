// Task logs to a REAL systemd-journald: started here as a transient unit of the contained systemd
// (volatile storage in the contained /run, no kernel log, no audit: AF_UNIX only), a real runscoped
// on the systemd path, and the lines read back both with journalctl (the fields runscope adds)
// and with `runscope logs ALLOC TASK` (which runs journalctl with the task's match).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/file.hpp"
#include "support/daemon_process.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"
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
// Nothing leaves the contained /run: no /var/log/journal, no kernel ring buffer, no syslog.
constexpr const char* kJournaldConf =
    "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\nForwardToConsole=no\n"
    "ForwardToWall=no\n";

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
    std::system(("systemctl stop " + parent_ + ".slice " + journald_ + " >/dev/null 2>&1").c_str());
    fs::remove(drop_in_);
  }
  testing::CliResult run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--bus", bus_->address()});
    return cli_.run(args);
  }
  std::string log() { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  // Every journal entry of the task, as journalctl's JSON objects.
  std::vector<nlohmann::json> entries(const std::string& task) {
    std::istringstream lines(run_command("journalctl --no-pager -o json RUNSCOPE_ALLOC=" + alloc_ +
                                         " RUNSCOPE_TASK=" + task + " 2>/dev/null || true"));
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
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
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], "talker");
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

}  // namespace
}  // namespace runscope
