// The D-Bus adaptor against the in-memory TaskService, on a dbus-daemon of the test's own:
// credentials come from the bus, errors keep their names, slow methods never block the loop,
// state changes become signals, and teardown leaves no thread, fd or subscription behind.
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "compat/sdbus.hpp"

#include "api/bus.hpp"
#include "api/client.hpp"
#include "api/errors.hpp"
#include "api/manager_object.hpp"
#include "support/bus_server.hpp"
#include "support/fake_task_service.hpp"
#include "support/on_exit.hpp"
#include "support/private_bus.hpp"

namespace runscope {
namespace {

using testing::FakeTaskService;
using testing::PrivateBus;

std::size_t count_entries(const char* dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

using Server = testing::BusServer;

using testing::OnExit;

class ManagerObjectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    bus_ = std::make_unique<PrivateBus>();
    server_ = std::make_unique<Server>(bus_->address(), service_);
  }
  void TearDown() override {
    server_.reset();
    bus_.reset();
  }
  api::ManagerClient client() { return api::ManagerClient(bus_->address()); }

  FakeTaskService service_;
  std::unique_ptr<PrivateBus> bus_;
  std::unique_ptr<Server> server_;
};

ErrorKind kind_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "the call did not fail";
  return ErrorKind::system;
}

TEST_F(ManagerObjectTest, StartsATaskAsTheCallerTheBusNames) {
  auto c = client();
  auto id = c.start(R"({"alloc":"a-1","task":"web-x","user":"someone"})");
  EXPECT_EQ(id, TaskId("a-1", "web-x"));
  ASSERT_TRUE(service_.last_caller());
  EXPECT_EQ(service_.last_caller()->uid, ::getuid());
  ASSERT_TRUE(service_.last_spec());
  EXPECT_EQ(service_.last_spec()->user, "someone");  // the spec's claim is passed on, not believed
}

TEST_F(ManagerObjectTest, NamesTheErrorsOfTheService) {
  auto c = client();
  EXPECT_EQ(kind_of([&] { c.start(R"({"alloc":"a1"})"); }), ErrorKind::invalid_argument);
  EXPECT_EQ(kind_of([&] { c.inspect(TaskId("nope", "x")); }), ErrorKind::not_found);
  EXPECT_EQ(kind_of([&] { c.stop(TaskId("a1", "bad/name"), std::nullopt); }), ErrorKind::invalid_argument);
  service_.fail_next_start(Error(ErrorKind::resources, "resources.cores: 3 asked, 1 free"));
  try {
    c.start(R"({"task":"t"})");
    FAIL() << "start did not fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resources);
    EXPECT_STREQ(e.what(), "resources.cores: 3 asked, 1 free");
  }
}

TEST_F(ManagerObjectTest, ErrorsTravelUnderTheirDocumentedNames) {
  auto connection = api::connect_bus(bus_->address());
  auto proxy = compat::make_proxy(*connection, api::kBusName, api::kObjectPath);
  try {
    std::string json;
    proxy->callMethod("InspectTask").onInterface(api::kInterface).withArguments("a", "b").storeResultsTo(json);
    FAIL() << "InspectTask of a missing task succeeded";
  } catch (const sdbus::Error& e) {
    EXPECT_EQ(e.getName(), "org.runscope1.Error.NotFound");
    EXPECT_NE(e.getMessage().find("a/b"), std::string::npos) << e.getMessage();
  }
}

TEST_F(ManagerObjectTest, AnswersOtherCallsWhileAStartWaits) {
  service_.hold_starts();
  auto pending = std::async(std::launch::async, [&] { return client().start(R"({"alloc":"a","task":"slow"})"); });
  OnExit release([this] { service_.release_starts(); });  // releasing twice is harmless
  SteadyClock clock;
  Deadline deadline(clock, std::chrono::seconds(20));
  while (service_.waiting_starts() == 0 && !deadline.expired()) clock.sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(service_.waiting_starts(), 1u);
  auto c = client();
  EXPECT_TRUE(c.list().empty());  // answered while the start is held
  EXPECT_EQ(c.version(), RUNSCOPE_VERSION);
  service_.release_starts();
  EXPECT_EQ(pending.get(), TaskId("a", "slow"));
  ASSERT_EQ(c.list().size(), 1u);
}

TEST_F(ManagerObjectTest, RefusesAnOversizedSpecAtOnceAsInvalidSpecNamingTheLimit) {
  server_.reset();
  server_ = std::make_unique<Server>(bus_->address(), service_, api::ManagerObjectOptions{1u << 20, {}});
  service_.hold_starts();  // a spec that got through would wait here
  std::string big = R"({"task":"big","env":{"X":")" + std::string(3u << 20, 'x') + R"("}})";
  try {
    client().start(big);
    FAIL() << "a 3 MiB spec was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("bytes, more than the 1048576 allowed (1 MiB; refused unparsed)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(service_.waiting_starts(), 0u);  // never reached the service
  EXPECT_FALSE(service_.last_spec());         // nor its parser
  service_.release_starts();
}

TEST_F(ManagerObjectTest, PassesARefusalOfTheServiceBackUnderItsName) {
  service_.fail_next_start(Error(ErrorKind::resources, "too many requests in flight (uid 1001 has 64 of at most 64)"));
  try {
    client().start(R"({"task":"t"})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resources);
    EXPECT_NE(std::string(e.what()).find("too many requests in flight"), std::string::npos) << e.what();
  }
}

TEST_F(ManagerObjectTest, EmitsEveryStateChangeAsASignal) {
  auto c = client();
  std::vector<api::StateChange> seen;
  c.watch([&](const api::StateChange& s) { seen.push_back(s); });
  auto id = c.start(R"({"alloc":"s","task":"t"})");
  service_.finish(id, 3);
  SteadyClock clock;
  Deadline deadline(clock, std::chrono::seconds(20));
  while (seen.size() < 2 && !deadline.expired()) c.pump(std::chrono::milliseconds(100));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].state, "running");
  EXPECT_EQ(seen[0].exit_code, -1);
  EXPECT_EQ(seen[1].state, "exited");
  EXPECT_EQ(seen[1].exit_code, 3);
  EXPECT_EQ(seen[1].alloc, "s");
}

TEST_F(ManagerObjectTest, InspectsWithEveryDocumentedField) {
  auto c = client();
  auto id = c.start(R"({"alloc":"i","task":"t"})");
  service_.finish(id, 0);
  auto j = c.inspect(id);
  for (const char* key : {"alloc", "task", "state", "pid", "cgroup", "exit_code", "signal", "oom_killed",
                          "started_at", "finished_at"}) {
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
  }
  EXPECT_EQ(j["state"], "exited");
  EXPECT_EQ(j["exit_code"], 0);
  EXPECT_TRUE(j["signal"].is_null());
  EXPECT_EQ(j["started_at"].get<std::string>().back(), 'Z');
  auto events = c.events(id);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["state"], "exited");
}

TEST_F(ManagerObjectTest, ReportsStatsLogsPoolAndFingerprint) {
  auto c = client();
  auto id = c.start(R"({"alloc":"r","task":"t"})");
  auto stats = c.stats(id);
  EXPECT_EQ(stats.at("cpu_user_usec"), 1500u);
  EXPECT_EQ(stats.at("memory_current"), 4096u);
  EXPECT_EQ(stats.count("memory_peak"), 0u);  // unknown values are absent, not zero
  EXPECT_EQ(c.logs(id)["target"], "file");
  auto pool = c.cpu_pool();
  EXPECT_EQ(pool["reservable"], "1-3");
  EXPECT_EQ(pool["reservations"][0]["cpus"], "1");
  EXPECT_EQ(c.fingerprint().at("driver.raw_exec"), "1");
}

TEST_F(ManagerObjectTest, StopsSignalsAndDestroys) {
  auto c = client();
  auto id = c.start(R"({"alloc":"k","task":"t"})");
  c.signal(id, 10);
  ASSERT_EQ(service_.signals_sent().size(), 1u);
  EXPECT_EQ(service_.signals_sent()[0].second, 10);
  c.stop(id, std::chrono::milliseconds(1500));
  EXPECT_EQ(service_.last_stop_timeout(), std::optional<Duration>(std::chrono::milliseconds(1500)));
  EXPECT_EQ(c.inspect(id)["state"], "killed");
  EXPECT_EQ(kind_of([&] { c.signal(id, 10); }), ErrorKind::conflict);
  c.destroy(id);
  EXPECT_EQ(kind_of([&] { c.inspect(id); }), ErrorKind::not_found);
}

TEST_F(ManagerObjectTest, ClientWithoutADaemonSaysHowToStartIt) {
  server_.reset();
  auto c = client();
  try {
    c.list();
    FAIL() << "list without a daemon succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("systemctl start runscoped"), std::string::npos) << e.what();
  }
}

TEST_F(ManagerObjectTest, TeardownLeavesNoThreadFdOrSubscription) {
  server_.reset();
  auto round = [&] {
    Server server(bus_->address(), service_);
    auto c = client();
    c.start(R"({"task":"t"})");
    EXPECT_EQ(service_.subscribers(), 1u);
  };
  round();  // first use loads what stays loaded (locale, NSS)
  auto threads = count_entries("/proc/self/task");
  auto fds = count_entries("/proc/self/fd");
  for (int i = 0; i < 20; ++i) round();
  EXPECT_EQ(service_.subscribers(), 0u);
  EXPECT_EQ(count_entries("/proc/self/task"), threads);
  EXPECT_EQ(count_entries("/proc/self/fd"), fds);
}

}  // namespace
}  // namespace runscope
