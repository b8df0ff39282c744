// Walks tests/data/hostile_inputs.tsv (the table documents each case): config files through the
// loader, specs through the JSON and TOML parsers, and argument lines through the real `runscope`
// binary against the real spec parser behind a private bus. Every refusal must carry the named
// error (or exit code) and the substring naming the key, field or value; nothing may be made.
#include <gtest/gtest.h>

#include <fstream>

#include "api/errors.hpp"
#include "common/error.hpp"
#include "config/config.hpp"
#include "driver/task_spec.hpp"
#include "support/bus_server.hpp"
#include "support/hostile_table.hpp"
#include "support/private_bus.hpp"
#include "support/runscope_cli.hpp"

namespace runscope {
namespace {

using testing::HostileCase;

// Runs `parse` and checks its outcome against the row.
template <typename F>
void expect_outcome(const HostileCase& c, F&& parse) {
  try {
    parse();
    EXPECT_EQ(c.expect, "ok") << c.where() << ": accepted";
  } catch (const Error& e) {
    std::string name = api::error_name(e.kind()).substr(std::string(api::kErrorPrefix).size());
    EXPECT_EQ(name, c.expect) << c.where() << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
        << c.where() << ": message lacks \"" << c.message << "\": " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << c.where() << ": escaped as a non-runscope error: " << e.what();
  }
}

TEST(TheHostileInputTable, IsWellFormedAndCoversEveryLayer) {
  for (const char* layer : {"config", "spec", "toml", "daemon", "cli"}) {
    auto cases = testing::hostile_cases(layer);
    EXPECT_FALSE(cases.empty()) << layer;
    for (const auto& c : cases) {
      EXPECT_FALSE(c.expect.empty()) << c.where();
      if (c.expect != "ok" && c.layer != "cli") {
        EXPECT_FALSE(c.message.empty()) << c.where() << ": says nothing to check";
      }
    }
  }
}

TEST(TheConfigLoader, RefusesEveryHostileConfigInTheTableNamingTheKey) {
  testing::TempDir dir;
  auto path = dir.path() / "runscope.toml";
  for (const auto& c : testing::hostile_cases("config")) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << c.input;
    expect_outcome(c, [&] { config::load_config(path, true); });
  }
}

TEST(TheSpecParser, RefusesEveryHostileJsonSpecInTheTableNamingTheField) {
  for (const auto& c : testing::hostile_cases("spec")) {
    expect_outcome(c, [&] { driver::parse_task_spec_json(c.input); });
  }
}

TEST(TheSpecParser, RefusesEveryHostileTaskFileInTheTableNamingTheLine) {
  testing::TempDir dir;
  auto path = dir.path() / "task.toml";
  for (const auto& c : testing::hostile_cases("toml")) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << c.input;
    expect_outcome(c, [&] { driver::parse_task_spec_toml(path); });
  }
}

TEST(TheCli, RefusesEveryHostileArgumentLineInTheTableWithItsExitCodeAndMakesNothing) {
  if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
  testing::PrivateBus bus;
  testing::FakeTaskService service;
  testing::BusServer server(bus.address(), service, {}, driver::parse_task_spec_json);
  testing::RunscopeCli cli;
  for (const auto& c : testing::hostile_cases("cli")) {
    auto r = cli.run(testing::hostile_cli_args(c.input, bus.address(), cli.dir()));
    EXPECT_EQ(std::to_string(r.code), c.expect) << c.where() << ": stderr: " << r.err.substr(0, 400);
    EXPECT_NE(r.err.find(c.message), std::string::npos)
        << c.where() << ": stderr lacks \"" << c.message << "\": " << r.err.substr(0, 400);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.where() << ": not one line: " << r.err.substr(0, 400);
    EXPECT_TRUE(service.list(daemon::Caller{}).empty()) << c.where() << ": a task was made";
  }
}

}  // namespace
}  // namespace runscope
