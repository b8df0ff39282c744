// The daemon's files: task.json and exit.json round trips, corrupt files refused by name, log
// rotation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <fstream>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/task_record.hpp"
#include "driver/log_sink.hpp"
#include "driver/shim_protocol.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TaskRecord sample() {
  TaskRecord r{blank_info(TaskId("a-b", "c-d"))};
  r.info.owner = 1000;
  r.info.state = TaskState::running;
  r.info.pid = 1234;
  r.info.manager = "cgroupfs";
  r.info.location = "/sys/fs/cgroup/memory/x";
  r.info.started_at = driver::parse_time("2026-01-02T03:04:05.678Z");
  r.info.cpus = CpuSet::parse("1,3");
  r.info.spec = driver::parse_task_spec_json(R"({"alloc":"a-b","task":"c-d","config":{"command":"x"}})");
  r.partition = cgroup::CpuPartition::reserved;
  r.shim_pid = 99;
  r.shim_start_time = 123456;
  return r;
}

TEST(ATaskRecord, RoundTripsThroughItsFile) {
  testing::TempDir dir;
  write_task_record(dir.path(), sample());
  auto back = read_task_record(dir.path());
  EXPECT_EQ(to_json_text(back), to_json_text(sample()));
  EXPECT_EQ(back.info.id, TaskId("a-b", "c-d"));
  EXPECT_EQ(back.info.cpus, CpuSet::parse("1,3"));
  EXPECT_EQ(back.partition, cgroup::CpuPartition::reserved);
  EXPECT_EQ(back.shim_start_time, 123456u);
  EXPECT_EQ(driver::format_time(*back.info.started_at), "2026-01-02T03:04:05.678Z");
}

TEST(ATaskRecord, RefusesCorruptFilesNamingThem) {
  testing::TempDir dir;
  try {
    read_task_record(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
  auto text = to_json_text(sample());
  for (std::string bad : {std::string("{ not json"), std::string("[]"), text.substr(0, text.size() / 2),
                          std::string(R"({"version": 2})")}) {
    std::ofstream(dir.path() / kTaskFile) << bad;
    try {
      read_task_record(dir.path());
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      EXPECT_THAT(e.what(), HasSubstr((dir.path() / kTaskFile).string()));
    }
  }
  auto hostile = nlohmann::json::parse(text);
  hostile["info"]["task"] = "../../etc";
  std::ofstream(dir.path() / kTaskFile) << hostile.dump();
  EXPECT_THROW(read_task_record(dir.path()), Error);
}

TEST(AnExitRecord, RoundTripsCodesAndSignals) {
  testing::TempDir dir;
  EXPECT_FALSE(driver::read_exit_record(dir.path()));
  auto at = driver::parse_time("2026-11-29T19:00:00.000Z");
  driver::write_exit_record(dir.path(), {driver::ExitStatus{true, 9}, 42, at});
  auto r = driver::read_exit_record(dir.path());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, (driver::ExitStatus{true, 9}));
  EXPECT_EQ(r->pid, 42);
  EXPECT_EQ(r->finished_at, at);
  std::ofstream(dir.path() / driver::kExitFile) << "{}";
  EXPECT_THROW(driver::read_exit_record(dir.path()), Error);
}

TEST(ARotatingFile, KeepsAtMostMaxFilesOfAtMostMaxSize) {
  testing::TempDir dir;
  auto path = dir.path() / "out.log";
  driver::RotatingFile log(path, 10, 3);
  for (int i = 0; i < 5; ++i) log.write("0123456789");
  log.write("abc");
  EXPECT_EQ(read_file(path), "abc");
  EXPECT_EQ(read_file(path.string() + ".1"), "0123456789");
  EXPECT_EQ(read_file(path.string() + ".2"), "0123456789");
  EXPECT_FALSE(fs::exists(path.string() + ".3"));
}

TEST(AJournalSink, SendsOneTaggedEntryPerLine) {
  testing::TempDir dir;
  auto path = dir.path() / "journal.sock";
  UniqueFd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  driver::JournalLines journal("al-1", "web", 3, path.string());
  journal.write("first\nsec");
  journal.write("ond\nrest");
  journal.flush();
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    char buf[4096];
    ssize_t n = ::recv(server.get(), buf, sizeof buf, MSG_DONTWAIT);
    ASSERT_GT(n, 0) << "entry " << i;
    got.emplace_back(buf, static_cast<std::size_t>(n));
  }
  EXPECT_THAT(got[0], HasSubstr("MESSAGE=first\n"));
  EXPECT_THAT(got[1], HasSubstr("MESSAGE=second\n"));
  EXPECT_THAT(got[2], HasSubstr("MESSAGE=rest\n"));
  EXPECT_THAT(got[0], HasSubstr("RUNSCOPE_ALLOC=al-1\n"));
  EXPECT_THAT(got[0], HasSubstr("RUNSCOPE_TASK=web\n"));
  EXPECT_THAT(got[0], HasSubstr("PRIORITY=3\n"));
  // Never a system program's identifier, whatever the task is called.
  EXPECT_THAT(got[0], HasSubstr("\nSYSLOG_IDENTIFIER=runscope/web\n"));
}

TEST(AJournalMatch, SelectsATasksLinesByItsNamesAndTheUidItRanAs) {
  EXPECT_EQ(driver::journal_match("al-1", "web", 1000),
            (std::map<std::string, std::string>{{"RUNSCOPE_ALLOC", "al-1"}, {"RUNSCOPE_TASK", "web"}, {"_UID", "1000"}}));
}

TEST(AProcessStartTime, IdentifiesALiveProcessAndNotAGoneOne) {
  auto mine = driver::process_start_time(::getpid());
  ASSERT_TRUE(mine);
  EXPECT_EQ(driver::process_start_time(::getpid()), mine);
  EXPECT_FALSE(driver::process_start_time(0x3fffffff));
}

TEST(ATaskRecord, KeepsAStopRequestAndReadsOlderFilesWithoutOne) {
  TaskRecord record{blank_info(TaskId("a1", "stopping"))};
  record.info.spec.alloc = "a1";
  record.info.spec.task = "stopping";
  record.info.spec.config = {{"command", "/bin/true"}};
  record.stop_requested = true;
  EXPECT_TRUE(parse_task_record(to_json_text(record)).stop_requested);
  auto older = nlohmann::json::parse(to_json_text(record));
  older.erase("stop_requested");
  EXPECT_FALSE(parse_task_record(older.dump()).stop_requested);
}

}  // namespace
}  // namespace runscope::daemon
