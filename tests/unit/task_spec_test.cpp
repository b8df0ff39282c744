// TaskSpec parsing: every field wrong is refused naming the field and value; nothing slips by.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.hpp"
#include "driver/catalog.hpp"
#include "driver/task_spec.hpp"
#include "support/driver_fakes.hpp"

namespace runscope::driver {
namespace {

using ::testing::HasSubstr;

std::string refusal(const std::string& json) {
  try {
    parse_task_spec_json(json);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << json;
  return "";
}

std::string with(const std::string& extra) {
  return R"({"task":"web","config":{"command":"/bin/true"})" + (extra.empty() ? "" : "," + extra) + "}";
}

TEST(ATaskSpec, ParsesEveryField) {
  auto spec = parse_task_spec_json(R"({
    "alloc": "a-1", "task": "web-2", "driver": "raw_exec",
    "config": {"command": "/bin/sh", "args": ["-c", "exit 3"], "cwd": "/tmp"},
    "env": {"K": "V"}, "user": "nobody",
    "resources": {"cores": 1, "memory_max": "512M", "cpu_weight": 100, "pids_max": 1000},
    "kill_signal": "SIGINT", "kill_timeout": "2s",
    "log": {"target": "file", "max_size": "1M", "max_files": 2}})");
  EXPECT_EQ(spec.alloc, "a-1");
  EXPECT_EQ(spec.task, "web-2");
  EXPECT_EQ(spec.env.at("K"), "V");
  EXPECT_EQ(spec.user, "nobody");
  EXPECT_EQ(spec.resources.cores, 1u);
  EXPECT_EQ(spec.resources.memory_max, 512u << 20);
  EXPECT_EQ(spec.resources.cpu_weight, 100u);
  EXPECT_EQ(spec.resources.pids_max, 1000u);
  EXPECT_EQ(spec.kill_signal, SIGINT);
  EXPECT_EQ(spec.kill_timeout, std::chrono::seconds(2));
  EXPECT_EQ(spec.log.target, LogSpec::Target::file);
  EXPECT_EQ(spec.log.max_size, 1u << 20);
  EXPECT_EQ(spec.log.max_files, 2u);
}

TEST(ATaskSpec, RoundTripsThroughJson) {
  auto spec = parse_task_spec_json(with(R"("env":{"A":"b"},"resources":{"cores":2},"kill_signal":"SIGINT","kill_timeout":"250ms")"));
  auto again = parse_task_spec_json(to_json(spec).dump());
  EXPECT_EQ(to_json(spec), to_json(again));
  EXPECT_EQ(again.kill_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(again.resources.cores, 2u);
}

TEST(ATaskSpec, RefusesEveryWrongFieldByName) {
  struct Case {
    std::string json, field;
  };
  std::vector<Case> cases = {
      {with(R"("bogus":1)"), "bogus: unknown field"},
      {with(R"("alloc":3)"), "alloc: expected a string"},
      {with(R"("alloc":"a/b")"), "alloc"},
      {with(R"("alloc":"..")"), "alloc"},
      {R"({"task":"","config":{"command":"x"}})", "task"},
      {R"({"task":"a/../b","config":{"command":"x"}})", "task"},
      {R"({"config":{"command":"x"}})", "task: required field missing"},
      {with(R"("driver":"docker")"), "driver: unknown driver \"docker\""},
      {with(R"("driver":5)"), "driver: expected a string"},
      {with(R"("env":[1])"), "env: expected an object"},
      {with(R"("env":{"A=B":"x"})"), "env.A=B"},
      {with(R"("env":{"A":1})"), "env.A: expected a string"},
      {with(R"("user":"")"), "user"},
      {with(R"("user":7)"), "user: expected a string"},
      {with(R"("resources":{"cores":0})"), "resources.cores: must be between 1"},
      {with(R"("resources":{"cores":-1})"), "resources.cores: must not be negative"},
      {with(R"("resources":{"cores":"two"})"), "resources.cores: expected an integer"},
      {with(R"("resources":{"memory_max":"lots"})"), "resources.memory_max"},
      {with(R"("resources":{"memory_max":0})"), "resources.memory_max"},
      {with(R"("resources":{"cpu_weight":10001})"), "resources.cpu_weight"},
      {with(R"("resources":{"pids_max":0})"), "resources.pids_max"},
      {with(R"("resources":{"gpus":1})"), "resources.gpus: unknown field"},
      {with(R"("kill_signal":"SIGNOPE")"), "kill_signal"},
      {with(R"("kill_signal":99)"), "kill_signal"},
      {with(R"("kill_timeout":"soon")"), "kill_timeout"},
      {with(R"("kill_timeout":5)"), "kill_timeout: expected a string"},
      {with(R"("log":{"target":"syslog"})"), "log.target: expected auto, file or journal (got \"syslog\")"},
      {with(R"("log":{"max_files":0})"), "log.max_files"},
      {with(R"("log":{"max_size":"x"})"), "log.max_size"},
      {with(R"("log":{"color":true})"), "log.color: unknown field"},
      {R"({"task":"t"})", "config.command: required field missing"},
      {R"({"task":"t","config":{"command":""}})", "config.command"},
      {R"({"task":"t","config":{"command":"x","args":"-c"}})", "config.args: expected an array"},
      {R"({"task":"t","config":{"command":"x","args":["a",2]}})", "config.args[1]: expected a string"},
      {R"({"task":"t","config":{"command":"x","cwd":"rel"}})", "config.cwd: must be an absolute path"},
      {R"({"task":"t","config":{"command":"x","image":"y"}})", "config.image: unknown field"},
      {R"({"task":"t","config":[]})", "config: expected an object"},
      {R"([1,2])", "spec: expected an object"},
      {R"({"task":)", "not valid JSON"},
  };
  for (const auto& c : cases) EXPECT_THAT(refusal(c.json), HasSubstr(c.field)) << c.json;
}

TEST(ATaskSpec, RefusesOversizedSpecsArgsAndEnv) {
  EXPECT_THAT(refusal(std::string(kMaxSpecBytes + 1, ' ')), HasSubstr("more than"));
  nlohmann::json args = nlohmann::json::array();
  for (std::size_t i = 0; i <= kMaxArgs; ++i) args.push_back("");
  nlohmann::json spec = {{"task", "t"}, {"config", {{"command", "x"}, {"args", args}}}};
  EXPECT_THAT(refusal(spec.dump()), HasSubstr("config.args: more than"));
  nlohmann::json env = nlohmann::json::object();
  for (int i = 0; i < 20; ++i) env["V" + std::to_string(i)] = std::string(kMaxEnvBytes / 16, 'x');
  spec = {{"task", "t"}, {"config", {{"command", "x"}}}, {"env", env}};
  EXPECT_THAT(refusal(spec.dump()), HasSubstr("env: more than"));
}

TEST(ATaskSpec, NamesTheFileLineAndFieldInToml) {
  testing::TempDir dir;
  auto file = dir.path() / "task.toml";
  std::ofstream(file) << "task = \"web\"\n[config]\ncommand = \"/bin/true\"\nargs = [\"a\", 3]\n";
  try {
    parse_task_spec_toml(file);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(file.string() + ":4:"));
    EXPECT_THAT(e.what(), HasSubstr("config.args[1]"));
  }
  std::ofstream(file) << "task = \"web\"\n[config]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"true\"]\n"
                         "[resources]\ncores = 1\nmemory_max = \"64M\"\n";
  auto spec = parse_task_spec_toml(file);
  EXPECT_EQ(spec.config["args"][1], "true");
  EXPECT_EQ(spec.resources.memory_max, 64u << 20);
  std::ofstream(file) << "task = \n";
  EXPECT_THROW(parse_task_spec_toml(file), Error);
}

TEST(ADriverCatalog, ListsRawExecAndTurnsASpecIntoASpawnSpec) {
  const auto& catalog = default_catalog();
  EXPECT_EQ(catalog.names(), std::vector<std::string>{"raw_exec"});
  auto spec = parse_task_spec_json(R"({"task":"t","config":{"command":"sh","args":["-c","x"],"cwd":"/tmp"},"env":{"A":"1"}})");
  auto spawn = catalog.get("raw_exec").to_spawn(spec, {"PATH=/bin"});
  EXPECT_EQ(spawn.argv, (std::vector<std::string>{"sh", "-c", "x"}));
  EXPECT_EQ(spawn.cwd, "/tmp");
  EXPECT_EQ(spawn.env, (std::vector<std::string>{"PATH=/bin", "A=1"}));
  EXPECT_TRUE(catalog.get("raw_exec").config_schema().contains("required"));
  EXPECT_THROW(catalog.get("qemu"), Error);
}

}  // namespace
}  // namespace runscope::driver
