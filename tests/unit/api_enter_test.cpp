// EnterTask on the bus against the in-memory TaskService: the caller's descriptors and the spec
// reach the service, its answer comes back as the status, bad specs and missing tasks are refused
// under their names, and a runscoped without the method is told apart (can_enter).
#include <gtest/gtest.h>

#include <unistd.h>

#include "api/client.hpp"
#include "common/fd.hpp"
#include "common/file.hpp"
#include "compat/sdbus.hpp"
#include "driver/enter_spec.hpp"
#include "support/bus_server.hpp"
#include "support/fake_task_service.hpp"
#include "support/private_bus.hpp"

namespace runscope {
namespace {

class EnterTaskOnTheBus : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    bus_ = std::make_unique<testing::PrivateBus>();
    server_ = std::make_unique<testing::BusServer>(bus_->address(), service_);
  }
  void TearDown() override {
    server_.reset();
    bus_.reset();
  }
  std::string read_all(UniqueFd& fd) {
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

  testing::FakeTaskService service_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::BusServer> server_;
};

TEST_F(EnterTaskOnTheBus, PassesTheDescriptorsAndTheSpecAndAnswersTheStatus) {
  api::ManagerClient client(bus_->address());
  auto id = client.start(R"({"alloc":"a","task":"t"})");
  EXPECT_TRUE(client.can_enter());
  Pipe out = make_pipe(O_CLOEXEC);
  driver::EnterSpec spec;
  spec.command = "sh";
  spec.args = {"-c", "true"};
  spec.env = {{"STATUS", "42"}};
  EXPECT_EQ(client.enter(id, spec, out.write.get(), out.write.get(), out.write.get()), 42);
  out.write.reset();
  EXPECT_EQ(read_all(out.read), "entered sh -c true\n");
  ASSERT_TRUE(service_.last_caller());
  EXPECT_EQ(service_.last_caller()->uid, ::getuid());  // who the bus says, as for every call
}

TEST_F(EnterTaskOnTheBus, RefusesABadSpecAsInvalidSpecAndAMissingTaskAsNotFound) {
  auto connection = api::connect_bus(bus_->address());
  auto proxy = compat::make_proxy(*connection, api::kBusName, api::kObjectPath);
  Pipe p = make_pipe(O_CLOEXEC);
  auto call = [&](const std::string& alloc, const std::string& spec) -> std::string {
    try {
      std::int32_t status;
      proxy->callMethod("EnterTask").onInterface(api::kInterface)
          .withArguments(alloc, std::string("t"), spec, sdbus::UnixFd(p.read.get()), sdbus::UnixFd(p.write.get()),
                         sdbus::UnixFd(p.write.get()))
          .storeResultsTo(status);
      return "ok";
    } catch (const sdbus::Error& e) {
      return e.getName() + ": " + e.getMessage();
    }
  };
  api::ManagerClient(bus_->address()).start(R"({"alloc":"a","task":"t"})");
  auto bad = call("a", R"({"command":"sh","argz":[]})");
  EXPECT_EQ(bad.rfind("org.runscope1.Error.InvalidSpec", 0), 0u) << bad;
  EXPECT_NE(bad.find("argz"), std::string::npos) << bad;
  auto big = call("a", R"({"command":")" + std::string(driver::kMaxEnterSpecBytes, 'x') + "\"}");
  EXPECT_EQ(big.rfind("org.runscope1.Error.InvalidSpec", 0), 0u) << big;
  auto missing = call("nope", R"({"command":"sh"})");
  EXPECT_EQ(missing.rfind("org.runscope1.Error.NotFound", 0), 0u) << missing;
  EXPECT_EQ(call("a", R"({"command":"sh"})"), "ok");
}

TEST(AnEnterSpec, RoundTripsThroughItsJson) {
  driver::EnterSpec spec{"sh", {"-c", "id"}, {{"K", "V"}}, true, "nobody", "/tmp"};
  auto back = driver::parse_enter_spec_json(driver::to_json_text(spec));
  EXPECT_EQ(back.command, "sh");
  EXPECT_EQ(back.args, spec.args);
  EXPECT_EQ(back.env, spec.env);
  EXPECT_TRUE(back.tty);
  EXPECT_EQ(back.user, "nobody");
  EXPECT_EQ(back.cwd, "/tmp");
}

TEST(AnEnterSpec, NamesTheFieldAtFault) {
  auto message = [](const std::string& json) -> std::string {
    try {
      driver::parse_enter_spec_json(json);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
      return e.what();
    }
    return "accepted";
  };
  EXPECT_NE(message(R"({"args":["x"]})").find("command: is required"), std::string::npos);
  EXPECT_NE(message(R"({"command":"sh","args":["a",1]})").find("args[1]"), std::string::npos);
  EXPECT_NE(message(R"({"command":"sh","env":{"A=B":"x"}})").find("'A=B' is not a variable name"), std::string::npos);
  EXPECT_NE(message(R"({"command":"sh","cwd":"relative"})").find("cwd: 'relative' is not an absolute path"),
            std::string::npos);
  EXPECT_NE(message(R"({"command":"sh","tty":"yes"})").find("tty"), std::string::npos);
  EXPECT_NE(message("[1]").find("not a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace runscope
