// What maps to what between Nomad's messages and runscoped's documents, the driver state a
// restarted plugin reads, the launch checks and the log line format go-plugin parses.
#include <gtest/gtest.h>

#include <regex>

#include "common/error.hpp"
#include "driver/task_spec.hpp"
#include "nomad/log.hpp"
#include "nomad/mapping.hpp"
#include "nomad/server.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::nomad {
namespace {

proto::TaskConfig nomad_task() {
  proto::TaskConfig t;
  t.set_id("8f1c/web/1a2b");
  t.set_name("web");
  t.set_alloc_id("8f1c-alloc");
  (*t.mutable_env())["NOMAD_TASK_NAME"] = "web";
  (*t.mutable_env())["SHARED"] = "from-nomad";
  t.set_user("nobody");
  auto* alloc = t.mutable_resources()->mutable_allocated_resources();
  alloc->mutable_memory()->set_memory_mb(256);
  alloc->mutable_cpu()->set_cpu_shares(1024);
  return t;
}

TEST(RunscopeSpec, MapsAllocAndTaskNamesEnvResourcesAndUser) {
  TaskConfig config;
  config.command = "/bin/sleep";
  config.args = {"60"};
  config.env = {{"SHARED", "from-config"}};
  auto spec = runscope_spec(nomad_task(), config);
  EXPECT_EQ(spec["alloc"], "8f1c-alloc");
  EXPECT_EQ(spec["task"], "web");
  EXPECT_EQ(spec["config"]["command"], "/bin/sleep");
  EXPECT_EQ(spec["env"]["NOMAD_TASK_NAME"], "web");
  EXPECT_EQ(spec["env"]["SHARED"], "from-config");  // the task config's env wins
  EXPECT_EQ(spec["resources"]["memory_max"], "256M");
  EXPECT_EQ(spec["resources"]["cpu_weight"], 39);  // 1024 shares, as runc and systemd convert
  EXPECT_EQ(spec["user"], "nobody");
  // runscoped's own parser takes it as it is.
  auto parsed = driver::parse_task_spec_json(spec.dump());
  EXPECT_EQ(parsed.resources.memory_max, 256ull << 20);
}

TEST(RunscopeSpec, LetsTheTaskConfigOverrideNomadsResourcesAndSetsKillSettings) {
  TaskConfig config;
  config.command = "/bin/true";
  config.memory_max = 64ull << 20;
  config.cpu_weight = 500;
  config.cores = 1;
  config.pids_max = 10;
  config.user = "root";
  config.kill_signal = 2;
  config.kill_timeout = std::chrono::seconds(3);
  auto parsed = driver::parse_task_spec_json(runscope_spec(nomad_task(), config).dump());
  EXPECT_EQ(parsed.resources.memory_max, 64ull << 20);
  EXPECT_EQ(parsed.resources.cpu_weight, 500u);
  EXPECT_EQ(parsed.resources.cores, 1u);
  EXPECT_EQ(parsed.resources.pids_max, 10u);
  EXPECT_EQ(parsed.user, "root");
  EXPECT_EQ(parsed.kill_signal, 2);
  EXPECT_EQ(parsed.kill_timeout, std::chrono::seconds(3));
}

TEST(RunscopeSpec, SendsOutputToNomadsLogPathsAndRunsInTheTaskDir) {
  testing::TempDir alloc;
  std::filesystem::create_directories(alloc.path() / "web");
  auto task = nomad_task();
  task.set_stdout_path("/alloc/logs/.web.stdout.fifo");
  task.set_stderr_path("/alloc/logs/.web.stderr.fifo");
  task.set_alloc_dir(alloc.path().string());
  TaskConfig config;
  config.command = "/bin/echo";
  config.args = {"a b", "c"};
  auto spec = runscope_spec(task, config);
  EXPECT_EQ(spec["config"]["command"], "/bin/sh");
  auto args = spec["config"]["args"];
  ASSERT_EQ(args.size(), 8u);
  EXPECT_EQ(args[3], "/alloc/logs/.web.stdout.fifo");
  EXPECT_EQ(args[4], "/alloc/logs/.web.stderr.fifo");
  EXPECT_EQ(args[5], "/bin/echo");
  EXPECT_EQ(args[6], "a b");  // passed as "$@": no re-splitting
  EXPECT_EQ(spec["config"]["cwd"], (alloc.path() / "web").string());
}

TEST(RunscopeSpec, RefusesATaskWithoutAnAllocOrWithABadName) {
  auto task = nomad_task();
  task.set_alloc_id("");
  EXPECT_THROW(task_id_of(task), Error);
  task = nomad_task();
  task.set_name("../etc");
  EXPECT_THROW(task_id_of(task), Error);
}

TEST(CpuWeight, ConvertsSharesLikeRuncAndStaysInRange) {
  EXPECT_EQ(cpu_weight_from_shares(0), 1u);
  EXPECT_EQ(cpu_weight_from_shares(2), 1u);
  EXPECT_EQ(cpu_weight_from_shares(262144), 10000u);
  EXPECT_EQ(cpu_weight_from_shares(1 << 30), 10000u);
}

TEST(DriverState, RoundTripsAndRefusesWhatIsNotRunscopes) {
  auto back = decode_driver_state(encode_driver_state({TaskId("a-1", "web"), 2}));
  EXPECT_EQ(back.id, TaskId("a-1", "web"));
  EXPECT_EQ(back.kill_signal, 2);
  EXPECT_FALSE(decode_driver_state(encode_driver_state({TaskId("a", "b"), std::nullopt})).kill_signal);
  EXPECT_THROW(decode_driver_state("\x82\xa3msgpack"), Error);
  EXPECT_THROW(decode_driver_state(R"({"version":2,"alloc":"a","task":"b"})"), Error);
  EXPECT_THROW(decode_driver_state(R"({"version":1,"alloc":"a","task":"../x"})"), Error);
}

TEST(TaskView, ReadsInspectAndReportsExitResultsAndTimes) {
  auto view = task_view(nlohmann::json::parse(R"({"state":"killed","pid":0,"exit_code":null,"signal":9,
      "oom_killed":false,"started_at":"2026-01-02T03:04:05.250Z","finished_at":"2026-01-02T03:04:06.000Z"})"));
  EXPECT_TRUE(view.final());
  auto result = exit_result(view);
  EXPECT_EQ(result.signal(), 9);
  EXPECT_EQ(result.exit_code(), 0);
  auto status = task_status("id", "web", view);
  EXPECT_EQ(status.state(), proto::EXITED);
  EXPECT_EQ(status.started_at().nanos(), 250000000);
  EXPECT_EQ(status.completed_at().seconds() - status.started_at().seconds(), 1);
  auto running = task_view(nlohmann::json::parse(R"({"state":"running","pid":42,"started_at":null})"));
  EXPECT_EQ(task_status("id", "web", running).state(), proto::RUNNING);
  EXPECT_FALSE(task_status("id", "web", running).has_result());
  EXPECT_TRUE(exit_result(task_view({{"state", "oom_killed"}})).oom_killed());
}

TEST(ResourceUsage, GivesCpuAsPercentOverTheIntervalAndMemoryWhenKnown) {
  auto t0 = std::chrono::steady_clock::now();
  StatsSample before{{{"cpu_user_usec", 1000000}, {"cpu_system_usec", 0}}, t0};
  StatsSample now{{{"cpu_user_usec", 1500000}, {"cpu_system_usec", 250000}, {"memory_current", 4096}},
                  t0 + std::chrono::seconds(1)};
  auto usage = resource_usage(now, before, std::chrono::seconds(100));
  EXPECT_DOUBLE_EQ(usage.cpu().user_mode(), 50.0);
  EXPECT_DOUBLE_EQ(usage.cpu().system_mode(), 25.0);
  EXPECT_DOUBLE_EQ(usage.cpu().percent(), 75.0);
  EXPECT_EQ(usage.memory().usage(), 4096u);
  ASSERT_EQ(usage.memory().measured_fields_size(), 1);  // memory_peak unknown: not claimed
  EXPECT_EQ(usage.memory().measured_fields(0), proto::MemoryUsage::USAGE);
  // The first sample averages over the task's life so far.
  EXPECT_DOUBLE_EQ(resource_usage(now, std::nullopt, std::chrono::seconds(10)).cpu().percent(), 17.5);
}

TEST(Launch, NeedsTheCookieProtocol2AndNoAutoMtls) {
  static std::map<std::string, std::string> env;
  auto get = [](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  env = {};
  EXPECT_NE(launch_refusal(get).value_or("").find("NOMAD_PLUGIN_MAGIC_COOKIE"), std::string::npos);
  env = {{kCookieKey, "wrong"}};
  EXPECT_TRUE(launch_refusal(get));
  env = {{kCookieKey, kCookieValue}};
  EXPECT_FALSE(launch_refusal(get));
  env[std::string("PLUGIN_PROTOCOL_VERSIONS")] = "1,2";
  EXPECT_FALSE(launch_refusal(get));
  env["PLUGIN_PROTOCOL_VERSIONS"] = "1,3";
  EXPECT_TRUE(launch_refusal(get));
  env["PLUGIN_PROTOCOL_VERSIONS"] = "2";
  env["PLUGIN_CLIENT_CERT"] = "-----BEGIN CERTIFICATE-----";
  EXPECT_NE(launch_refusal(get).value_or("").find("AutoMTLS"), std::string::npos);
  EXPECT_EQ(handshake_line("/tmp/x/plugin.sock"), "1|2|unix|/tmp/x/plugin.sock|grpc|");
}

TEST(Log, WritesHclogJsonWithTheTimestampLayoutGoPluginParses) {
  auto line = format_log_line(LogLevel::warn, "stopping", {{"task", "a/b"}}, "2026-01-02T03:04:05.000006Z");
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["@level"], "warn");
  EXPECT_EQ(j["@message"], "stopping");
  EXPECT_EQ(j["task"], "a/b");
  EXPECT_EQ(line.back(), '\n');
  auto stamp = log_timestamp(std::chrono::system_clock::time_point(std::chrono::microseconds(1767322245000006)));
  EXPECT_EQ(stamp, "2026-01-02T02:50:45.000006Z");
  EXPECT_TRUE(std::regex_match(log_timestamp(std::chrono::system_clock::now()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
  // Text that is not UTF-8 is replaced, never thrown.
  EXPECT_NO_THROW(format_log_line(LogLevel::info, "bad \xff byte", {}, "t"));
}

}  // namespace
}  // namespace runscope::nomad
