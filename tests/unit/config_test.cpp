#include "config/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

#include "common/error.hpp"

namespace runscope::config {
namespace {

using ::testing::HasSubstr;

std::string error_of(std::string_view text, const std::string& name = "test.toml") {
  try {
    parse_config(text, name);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return "";
}

class TempFile {
 public:
  explicit TempFile(std::string_view content) {
    path_ = std::filesystem::temp_directory_path() /
            ("runscope-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + ".toml");
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(AConfig, ShippedFileEqualsTheBuiltInDefaults) {
  Config shipped = load_config(std::filesystem::path(RUNSCOPE_SOURCE_DIR) / "config/runscope.toml", true);
  Config defaults;
  EXPECT_EQ(shipped.cgroups, defaults.cgroups);
  EXPECT_EQ(shipped.cpuset, defaults.cpuset);
  EXPECT_EQ(shipped.task, defaults.task);
  EXPECT_EQ(shipped.daemon, defaults.daemon);
  EXPECT_EQ(shipped.limits, defaults.limits);
}

TEST(AConfig, EmptyFileGivesTheDefaults) {
  Config c = parse_config("", "empty.toml");
  EXPECT_EQ(c.cgroups, CgroupsConfig{});
  EXPECT_EQ(c.cpuset, CpusetConfig{});
  EXPECT_EQ(c.task, TaskConfig{});
  EXPECT_EQ(c.daemon, DaemonConfig{});
  EXPECT_EQ(c.limits, LimitsConfig{});
  EXPECT_EQ(c.source, "empty.toml");
}

TEST(AConfig, ReadsEveryKey) {
  Config c = parse_config(R"(
[cgroups]
manager = "systemd"
parent = "jobs.slice"
systemd_timeout = "10s"
[cpuset]
reservable_cores = "0-7"
reserved_cores = "0"
min_shared_cores = 2
reconcile_interval = "1m"
[task]
kill_signal = "INT"
kill_timeout = "250ms"
denied_uids = [0, 65534]
[daemon]
state_dir = "/run/rs"
log_level = "debug"
)", "full.toml");
  EXPECT_EQ(c.cgroups.manager, ManagerChoice::systemd);
  EXPECT_EQ(c.cgroups.parent, "jobs.slice");
  EXPECT_EQ(c.cgroups.systemd_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c.cpuset.reservable_cores, CpuSet::parse("0-7"));
  EXPECT_EQ(c.cpuset.reserved_cores, CpuSet::parse("0"));
  EXPECT_EQ(c.cpuset.min_shared_cores, 2u);
  EXPECT_EQ(c.cpuset.reconcile_interval, std::chrono::minutes(1));
  EXPECT_EQ(c.task.kill_signal, SIGINT);
  EXPECT_EQ(c.task.kill_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(c.task.denied_uids, (std::vector<uid_t>{0, 65534}));
  EXPECT_EQ(c.daemon.state_dir, "/run/rs");
  EXPECT_EQ(c.daemon.log_level, "debug");
}

TEST(AConfig, AcceptsEachManagerAndANumericSignal) {
  EXPECT_EQ(parse_config("[cgroups]\nmanager = \"cgroupfs\"", "t").cgroups.manager, ManagerChoice::cgroupfs);
  EXPECT_EQ(parse_config("[cgroups]\nmanager = \"auto\"", "t").cgroups.manager, ManagerChoice::automatic);
  EXPECT_EQ(parse_config("[task]\nkill_signal = 9", "t").task.kill_signal, SIGKILL);
  EXPECT_EQ(parse_config("[task]\nkill_timeout = \"0\"", "t").task.kill_timeout, Duration::zero());
}

struct BadValue {
  const char* table;
  const char* key;
  const char* value;
  const char* expect;  // part of the message
};

// Every key with a value of the wrong type.
const BadValue kWrongTypes[] = {
    {"cgroups", "manager", "1", "expected a string, got integer"},
    {"cgroups", "parent", "true", "expected a string, got boolean"},
    {"cgroups", "systemd_timeout", "30", "expected a string, got integer"},
    {"cpuset", "reservable_cores", "[0, 1]", "expected a string, got array"},
    {"cpuset", "reserved_cores", "0", "expected a string, got integer"},
    {"cpuset", "min_shared_cores", "\"1\"", "expected an integer, got string"},
    {"cpuset", "min_shared_cores", "1.5", "expected an integer, got floating-point"},
    {"cpuset", "reconcile_interval", "{ s = 1 }", "expected a string, got table"},
    {"task", "kill_signal", "15.0", "expected a string, got floating-point"},
    {"task", "kill_timeout", "5", "expected a string, got integer"},
    {"task", "denied_uids", "0", "expected an array of integers, got integer"},
    {"task", "denied_uids", "[\"root\"]", "expected an integer, got string"},
    {"daemon", "state_dir", "1979-05-27", "expected a string, got date"},
    {"daemon", "log_level", "3", "expected a string, got integer"},
    {"limits", "tasks", "1.5", "expected an integer, got floating-point"},
    {"limits", "reserved_cores", "true", "expected an integer, got boolean"},
    {"limits", "cpu_weight", "[100]", "expected an integer, got array"},
    {"limits", "memory_max", "true", "expected a size (\"512M\"), a number of bytes or \"unlimited\", got boolean"},
    {"limits", "memory_total", "1.5", "expected a size"},
    {"limits", "log_bytes", "{ a = 1 }", "expected a size"},
    {"limits.user.alice", "tasks", "1.5", "expected an integer, got floating-point"},
    {"limits.group.dev", "memory_max", "false", "expected a size"},
    {"limits", "user", "1", "expected a table of [limits.user.NAME] tables, got integer"},
    {"limits.user", "alice", "1", "expected a table, got integer"},
};

// Every key with a value of the right type that makes no sense.
const BadValue kBadValues[] = {
    {"cgroups", "manager", "\"docker\"", "\"docker\" is not one of"},
    {"cgroups", "parent", "\"\"", "must name a slice or folder"},
    {"cgroups", "parent", "\"/\"", "must name a slice or folder"},
    {"cgroups", "parent", "\"a/../b\"", "must not contain \"..\""},
    {"cgroups", "parent", "\"a\\nb\"", "control character"},
    {"cgroups", "systemd_timeout", "\"0s\"", "must be longer than 0"},
    {"cgroups", "systemd_timeout", "\"5 parsecs\"", "is not a duration"},
    {"cpuset", "reservable_cores", "\"3-1\"", "runs backwards"},
    {"cpuset", "reservable_cores", "\"\"", "must not be empty"},
    {"cpuset", "reserved_cores", "\"a\"", "not a CPU number"},
    {"cpuset", "reserved_cores", "\"99999\"", "beyond the limit"},
    {"cpuset", "min_shared_cores", "8193", "out of range 0..8192"},
    {"cpuset", "min_shared_cores", "-1", "out of range"},
    {"cpuset", "reconcile_interval", "\"0\"", "must be longer than 0"},
    {"cpuset", "reconcile_interval", "\"-5s\"", "is not a duration"},
    {"task", "kill_signal", "\"SIGFOO\"", "unknown signal \"SIGFOO\""},
    {"task", "kill_signal", "0", "out of range"},
    {"task", "kill_signal", "999", "out of range"},
    {"task", "kill_timeout", "\"5\"", "with a unit"},
    {"task", "denied_uids", "[-1]", "out of range"},
    {"task", "denied_uids", "[4294967295]", "out of range"},
    {"daemon", "state_dir", "\"var/lib\"", "not an absolute path"},
    {"daemon", "log_level", "\"loud\"", "\"loud\" is not one of"},
    {"limits", "tasks", "\"lots\"", "\"lots\" is not a number or \"unlimited\""},
    {"limits", "tasks", "-1", "out of range 0..1000000"},
    {"limits", "reserved_cores", "8193", "out of range 0..8192"},
    {"limits", "cpu_weight", "0", "out of range 1..10000"},
    {"limits", "cpu_weight", "10001", "out of range 1..10000"},
    {"limits", "memory_max", "\"4Q\"", "limits.memory_max"},
    {"limits", "memory_total", "-1", "out of range"},
    {"limits", "log_bytes", "\"Unlimited\"", "limits.log_bytes"},
    {"limits.user.alice", "cpu_weight", "20000", "out of range 1..10000"},
    {"limits.group.dev", "tasks", "\"none\"", "is not a number or \"unlimited\""},
};

void expect_located_error(const BadValue& bad) {
  std::string text = "\n[" + std::string(bad.table) + "]\n" + bad.key + " = " + bad.value + "\n";
  std::string msg = error_of(text, "/etc/x.toml");
  std::string key = std::string(bad.table) + "." + bad.key;
  EXPECT_THAT(msg, HasSubstr("/etc/x.toml:3:")) << text;
  EXPECT_THAT(msg, HasSubstr(key + ": ")) << text;
  EXPECT_THAT(msg, HasSubstr(bad.expect)) << text;
}

TEST(AConfig, RejectsEveryKeyWithTheWrongTypeNamingFileLineAndKey) {
  for (const auto& bad : kWrongTypes) expect_located_error(bad);
}

TEST(AConfig, RejectsEveryKeyWithABadValueNamingFileLineAndKey) {
  for (const auto& bad : kBadValues) expect_located_error(bad);
}

TEST(AConfig, ReadsLimitsWithOverridesPerUserAndGroup) {
  Config c = parse_config(R"([limits]
tasks = 10
reserved_cores = "unlimited"
memory_max = "4G"
memory_total = 17179869184
log_bytes = "100M"

[limits.user.alice]
tasks = 50

[limits.user."1001"]
cpu_weight = 1000

[limits.group.builders]
reserved_cores = 4
memory_total = "unlimited"
)",
                          "/etc/l.toml");
  const auto& l = c.limits;
  EXPECT_EQ(l.defaults, (LimitValues{10, kUnlimited, 100, 4ull << 30, 16ull << 30, 100ull << 20}))
      << "cpu_weight keeps its built-in 100";
  ASSERT_EQ(l.users.size(), 2u);  // in toml++'s order: by name
  EXPECT_EQ(l.users[1], (LimitOverride{"alice", LimitValues{50, {}, {}, {}, {}, {}}, "/etc/l.toml:8:14"}));
  EXPECT_EQ(l.users[0].name, "1001");
  EXPECT_EQ(l.users[0].values.cpu_weight, 1000u);
  ASSERT_EQ(l.groups.size(), 1u);
  EXPECT_EQ(l.groups[0].values, (LimitValues{{}, 4, {}, {}, kUnlimited, {}}));
  EXPECT_EQ(l.groups[0].where, "/etc/l.toml:14:15");
}

TEST(AConfig, HasBoundedLimitsForMembersByDefault) {
  LimitsConfig l;
  EXPECT_EQ(l.defaults, (LimitValues{64, 1, 100, kUnlimited, kUnlimited, 1ull << 30}));
  EXPECT_TRUE(l.users.empty());
  EXPECT_TRUE(l.groups.empty());
  EXPECT_EQ(parse_config("[cpuset]\nmin_shared_cores = 0\n", "t").cpuset.min_shared_cores, 0u) << "the old rule";
}

TEST(AConfig, RejectsUnknownLimitKeysNamingTheirTable) {
  EXPECT_THAT(error_of("[limits]\ntask = 1\n"), HasSubstr("test.toml:2:1: limits.task: unknown key in [limits]"));
  EXPECT_THAT(error_of("[limits.user.bob]\nmemory = 1\n"),
              HasSubstr("test.toml:2:1: limits.user.bob.memory: unknown key in [limits.user.bob]"));
  EXPECT_THAT(error_of("[limits.users.bob]\ntasks = 1\n"), HasSubstr("limits.users: unknown key in [limits]"));
  EXPECT_THAT(error_of("[limits.user.\"\"]\ntasks = 1\n"), HasSubstr("limits.user.: names no user or group"));
}

TEST(AConfig, PointsAtTheColumnOfTheValue) {
  EXPECT_THAT(error_of("[task]\nkill_timeout   = 5\n", "f.toml"), HasSubstr("f.toml:2:18: task.kill_timeout: "));
  EXPECT_THAT(error_of("[task]\ndenied_uids = [1, \"x\"]\n", "f.toml"),
              HasSubstr("f.toml:2:19: task.denied_uids: expected an integer"));
}

TEST(AConfig, RejectsUnknownKeysAndTables) {
  EXPECT_THAT(error_of("[cgroups]\nmanagr = \"auto\"\n"), HasSubstr("test.toml:2:1: cgroups.managr: unknown key"));
  EXPECT_THAT(error_of("[network]\nport = 1\n"), HasSubstr("test.toml:1:2: network: unknown table"));
  EXPECT_THAT(error_of("log_level = \"info\"\n"), HasSubstr("test.toml:1:1: log_level: unknown table"));
  EXPECT_THAT(error_of("[cpuset.extra]\nx = 1\n"), HasSubstr("cpuset.extra: unknown key"));
  EXPECT_THAT(error_of("cgroups = 1\n"), HasSubstr("test.toml:1:11: cgroups: expected a table, got integer"));
}

TEST(AConfig, RejectsDuplicateTablesAndKeysWithTheirPosition) {
  EXPECT_THAT(error_of("[task]\nkill_timeout = \"1s\"\n[task]\n"), HasSubstr("test.toml:3:"));
  EXPECT_THAT(error_of("[task]\nkill_timeout = \"1s\"\nkill_timeout = \"2s\"\n"), HasSubstr("test.toml:3:"));
}

TEST(AConfig, RejectsSyntaxErrorsWithTheirPosition) {
  EXPECT_THAT(error_of("[task\n"), HasSubstr("test.toml:1:"));
  EXPECT_THAT(error_of("[task]\nkill_timeout = \n"), HasSubstr("test.toml:2:"));
  EXPECT_THAT(error_of("[task]\nkill_timeout = \"5s\n"), HasSubstr("test.toml:2:"));
}

TEST(AConfig, RejectsABinaryFile) {
  std::string binary = "\x7f" "ELF\x02\x01\x01";
  binary += std::string("\0\0\0\xff\xfe", 5);
  TempFile file(binary);
  try {
    load_config(file.path(), true);
    ADD_FAILURE() << "a binary file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_THAT(e.what(), HasSubstr(file.path().string() + ":1:"));
  }
}

TEST(AConfig, RejectsInvalidUtf8InAString) {
  EXPECT_THAT(error_of("[daemon]\nlog_level = \"\xff\"\n"), HasSubstr("test.toml:2:"));
}

TEST(AConfig, CrossChecksNameBothKeys) {
  EXPECT_THAT(error_of("[cpuset]\nreservable_cores = \"0-3\"\nreserved_cores = \"4\"\n"),
              HasSubstr("test.toml:3:18: cpuset.reserved_cores: \"4\" is not inside cpuset.reservable_cores \"0-3\""));
  EXPECT_THAT(error_of("[cpuset]\nreservable_cores = \"0-1\"\nreserved_cores = \"0\"\nmin_shared_cores = 2\n"),
              HasSubstr("test.toml:4:20: cpuset.min_shared_cores: 2 is more than the 1 cores cpuset.reservable_cores "
                        "minus cpuset.reserved_cores leaves"));
}

TEST(AConfig, MissingDefaultFileGivesDefaultsButMissingExplicitFileIsAnError) {
  auto missing = std::filesystem::temp_directory_path() / "runscope-no-such-config.toml";
  EXPECT_EQ(load_config(missing, false).task, TaskConfig{});
  try {
    load_config(missing, true);
    ADD_FAILURE() << "missing explicit file accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_THAT(e.what(), HasSubstr(missing.string()));
    EXPECT_THAT(e.what(), HasSubstr("No such file"));
  }
}

TEST(AConfig, LoadsAFileAndRemembersItsSource) {
  TempFile file("[daemon]\nlog_level = \"warn\"\n");
  Config c = load_config(file.path(), true);
  EXPECT_EQ(c.daemon.log_level, "warn");
  EXPECT_EQ(c.source, file.path());
}

TEST(AParentChoice, DependsOnTheCgroupVersionUnlessConfigured) {
  CgroupsConfig c;
  EXPECT_EQ(parent_for(c, true), "runscope.slice");
  EXPECT_EQ(parent_for(c, false), "/runscope");
  c.parent = "jobs";
  EXPECT_EQ(parent_for(c, true), "jobs");
  EXPECT_EQ(parent_for(c, false), "jobs");
}

TEST(ASignalName, ParsesNamesShortNamesAndNumbers) {
  EXPECT_EQ(parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(parse_signal("TERM"), SIGTERM);
  EXPECT_EQ(parse_signal("15"), SIGTERM);
  EXPECT_EQ(parse_signal("SIGKILL"), SIGKILL);
  EXPECT_EQ(parse_signal("HUP"), SIGHUP);
  EXPECT_EQ(parse_signal("USR2"), SIGUSR2);
}

TEST(ASignalName, RejectsUnknownNamesAndOutOfRangeNumbersNamingThem) {
  for (const char* bad : {"", "SIG", "sigterm", "TERMX", "0", "-9", "65", "1e3", " 15"}) {
    try {
      parse_signal(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      EXPECT_THAT(e.what(), HasSubstr(bad));
    }
  }
}

TEST(ASignalName, RoundTripsEveryStandardSignal) {
  for (int sig = 1; sig < SIGRTMIN; ++sig) {
    if (signal_name(sig) == std::to_string(sig)) continue;  // unnamed gaps (glibc reserves 32, 33)
    EXPECT_EQ(parse_signal(signal_name(sig)), sig) << signal_name(sig);
  }
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(SIGRTMIN + 2), "SIGRTMIN+2");
}

}  // namespace
}  // namespace runscope::config
