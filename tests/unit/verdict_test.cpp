// The verdict both paths print: the OOM rule, the keys, and that runscoped's inspect carries the
// same keys with the same values as `runscope exec --status-file`.
#include <gtest/gtest.h>
#include <signal.h>

#include "daemon/task_record.hpp"
#include "driver/shim_protocol.hpp"
#include "driver/verdict.hpp"

namespace runscope::driver {
namespace {

cgroup::Stats counted(std::uint64_t oom_kills) {
  cgroup::Stats s;
  s.cpu_user = std::chrono::microseconds(1500);
  s.cpu_system = std::chrono::microseconds(250);
  s.memory_peak = 64u << 20;
  s.oom_kills = oom_kills;
  return s;
}

const WallTime kStart = parse_time("2026-01-02T03:04:05.000Z");
const WallTime kEnd = parse_time("2026-01-02T03:04:07.500Z");

TEST(TheVerdict, CallsItAnOomKillOnlyWhenSigkillMetACountedOomKill) {
  EXPECT_TRUE(make_verdict({true, SIGKILL}, counted(1), kStart, kEnd).oom_killed);
  EXPECT_FALSE(make_verdict({true, SIGKILL}, counted(0), kStart, kEnd).oom_killed) << "kill -9 is not an OOM kill";
  // A child was OOM-killed, but the main process exited on its own or died of something else.
  EXPECT_FALSE(make_verdict({false, 1}, counted(1), kStart, kEnd).oom_killed);
  EXPECT_FALSE(make_verdict({true, SIGTERM}, counted(1), kStart, kEnd).oom_killed);
  EXPECT_FALSE(make_verdict({true, SIGKILL}, std::nullopt, kStart, kEnd).oom_killed) << "nothing counted";
}

TEST(TheVerdict, PrintsEveryKeyWithNullWhereUnknown) {
  auto j = make_verdict({false, 3}, counted(0), kStart, kEnd).to_json();
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_TRUE(j["signal"].is_null());
  EXPECT_EQ(j["oom_killed"], false);
  EXPECT_EQ(j["started_at"], "2026-01-02T03:04:05.000Z");
  EXPECT_EQ(j["finished_at"], "2026-01-02T03:04:07.500Z");
  EXPECT_EQ(j["memory_peak"], 64u << 20);
  EXPECT_EQ(j["cpu_user_usec"], 1500);
  EXPECT_EQ(j["cpu_system_usec"], 250);
  auto bare = make_verdict({true, SIGKILL}, std::nullopt, kStart, kEnd).to_json();
  EXPECT_EQ(bare["signal"], SIGKILL);
  EXPECT_TRUE(bare["exit_code"].is_null());
  for (const char* key : {"memory_peak", "cpu_user_usec", "cpu_system_usec"}) EXPECT_TRUE(bare[key].is_null()) << key;
}

TEST(TheVerdict, IsWhatInspectShowsAndSurvivesTheDaemonsRecord) {
  const auto verdict = make_verdict({true, SIGKILL}, counted(2), kStart, kEnd);
  daemon::TaskRecord r{daemon::blank_info(TaskId("a", "t"))};
  r.info.state = daemon::TaskState::oom_killed;
  r.info.manager = "cgroupfs";
  r.info.spec = parse_task_spec_json(R"({"alloc":"a","task":"t","config":{"command":"x"}})");
  r.info.exit_code = verdict.exit_code;
  r.info.signal = verdict.signal;
  r.info.oom_killed = verdict.oom_killed;
  r.info.started_at = verdict.started_at;
  r.info.finished_at = verdict.finished_at;
  r.info.usage = verdict.usage;
  const auto inspected = r.info.to_json();
  const auto keys = verdict.to_json();
  for (const auto& [key, value] : keys.items()) EXPECT_EQ(inspected.at(key), value) << key;
  const auto back = daemon::parse_task_record(daemon::to_json_text(r));
  EXPECT_EQ(back.info.usage, verdict.usage);
}

}  // namespace
}  // namespace runscope::driver
