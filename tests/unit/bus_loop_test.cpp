// runscoped's bus loop (runscoped/bus_loop.hpp) feeds the watchdog only while it dispatches: a
// handler that never returns stops the pings (so systemd restarts a wedged runscoped), and they
// come back once it returns. On a dbus-daemon of the test's own, with the real ManagerObject.
#include <gtest/gtest.h>

#include <poll.h>

#include <atomic>
#include <future>
#include <thread>

#include "api/bus.hpp"
#include "api/client.hpp"
#include "api/errors.hpp"
#include "api/manager_object.hpp"
#include "compat/sdbus.hpp"
#include "runscoped/bus_loop.hpp"
#include "support/fake_task_service.hpp"
#include "support/on_exit.hpp"
#include "support/private_bus.hpp"

namespace runscope::runscoped {
namespace {

using namespace std::chrono_literals;

using testing::OnExit;

TEST(TheBusLoop, PingsTheWatchdogOnlyWhileItDispatches) {
  if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
  testing::PrivateBus bus;
  testing::FakeTaskService service;
  auto connection = api::connect_bus(bus.address());
  compat::request_name(*connection, api::kBusName);
  std::atomic<int> pings{0};
  {
    api::ManagerObject object(*connection, service, testing::parse_test_spec);
    BusLoop loop(*connection, {std::chrono::milliseconds(20), [&] { ++pings; }, nullptr});
    std::this_thread::sleep_for(200ms);
    EXPECT_GE(pings.load(), 3) << "an idle loop pings from its poll timeout";

    service.wedge();
    auto wedged = std::async(std::launch::async, [&] { return api::ManagerClient(bus.address()).fingerprint(); });
    OnExit unwedge([&] { service.unwedge(); });  // unwedging twice is harmless
    for (int i = 0; i < 1000 && !service.wedged_call_waiting(); ++i) std::this_thread::sleep_for(5ms);
    ASSERT_TRUE(service.wedged_call_waiting());
    std::this_thread::sleep_for(50ms);  // a ping already on its way may land
    int before = pings.load();
    std::this_thread::sleep_for(400ms);  // 20 intervals
    EXPECT_EQ(pings.load(), before) << "a wedged loop must not feed the watchdog";

    service.unwedge();
    EXPECT_FALSE(wedged.get().empty());
    std::this_thread::sleep_for(200ms);
    EXPECT_GE(pings.load(), before + 3) << "the pings resume once the loop dispatches again";
    EXPECT_EQ(::poll(nullptr, 0, 0), 0);
    pollfd ended{loop.fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&ended, 1, 0), 0) << "the loop is still running";
  }
  compat::release_name(*connection, api::kBusName);
}

TEST(TheBusLoop, SendsTheReplyOfAnOperationThatEndedElsewhereAndLaterOnesAtOnceOnceItIsGone) {
  if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
  testing::PrivateBus bus;
  testing::FakeTaskService service;
  auto connection = api::connect_bus(bus.address());
  compat::request_name(*connection, api::kBusName);
  auto outbox = std::make_shared<Outbox>();
  std::atomic<int> posted{0};
  api::ManagerObjectOptions options;
  options.send_on_loop = [&, post = outbox->poster()](std::function<void()> reply) {
    ++posted;
    post(std::move(reply));
  };
  {
    api::ManagerObject object(*connection, service, testing::parse_test_spec, options);
    BusLoop loop(*connection, {std::nullopt, [] {}, outbox});
    service.hold_starts();
    auto started = std::async(std::launch::async, [&] { return api::ManagerClient(bus.address()).start(R"({"task":"t"})"); });
    OnExit release([&] { service.release_starts(); });  // releasing twice is harmless
    for (int i = 0; i < 1000 && service.waiting_starts() == 0; ++i) std::this_thread::sleep_for(5ms);
    ASSERT_EQ(service.waiting_starts(), 1u);
    service.release_starts();  // the reply is made on this thread and sent from the loop
    ASSERT_EQ(started.wait_for(20s), std::future_status::ready);
    EXPECT_EQ(started.get().task(), "t");
  }
  EXPECT_EQ(posted.load(), 2);  // the reply and the task's TaskStateChanged
  int ran = 0;
  outbox->post([&] { ++ran; });  // the loop is gone: at once, here
  EXPECT_EQ(ran, 1);
  compat::release_name(*connection, api::kBusName);
}

}  // namespace
}  // namespace runscope::runscoped
