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
#include "support/private_bus.hpp"

namespace runscope::runscoped {
namespace {

using namespace std::chrono_literals;

TEST(TheBusLoop, PingsTheWatchdogOnlyWhileItDispatches) {
  if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
  testing::PrivateBus bus;
  testing::FakeTaskService service;
  auto connection = api::connect_bus(bus.address());
  compat::request_name(*connection, api::kBusName);
  std::atomic<int> pings{0};
  {
    api::ManagerObject object(*connection, service, testing::parse_test_spec);
    BusLoop loop(*connection, {std::chrono::milliseconds(20), [&] { ++pings; }});
    std::this_thread::sleep_for(200ms);
    EXPECT_GE(pings.load(), 3) << "an idle loop pings from its poll timeout";

    service.wedge();
    auto wedged = std::async(std::launch::async, [&] { return api::ManagerClient(bus.address()).fingerprint(); });
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

}  // namespace
}  // namespace runscope::runscoped
