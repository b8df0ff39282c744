// runscoped's bus side in miniature for tests: a connection to a private bus owning
// org.runscope1, a ManagerObject over the given TaskService, and the loop thread.
#pragma once

#include <memory>
#include <string>

#include <sdbus-c++/sdbus-c++.h>

#include "api/bus.hpp"
#include "api/errors.hpp"
#include "api/manager_object.hpp"
#include "compat/sdbus.hpp"
#include "support/fake_task_service.hpp"

namespace runscope::testing {

class BusServer {
 public:
  // `parse`: the fake's lenient parser by default; the hostile-input test passes the real one.
  BusServer(const std::string& address, daemon::TaskService& service, api::ManagerObjectOptions options = {},
            api::SpecParser parse = parse_test_spec)
      : connection_(api::connect_bus(address)) {
    compat::request_name(*connection_, api::kBusName);
    object_ = std::make_unique<api::ManagerObject>(*connection_, service, std::move(parse), options);
    connection_->enterEventLoopAsync();
  }
  ~BusServer() {
    connection_->leaveEventLoop();
    object_.reset();
    try {
      compat::release_name(*connection_, api::kBusName);
    } catch (const sdbus::Error&) {
      // the bus may be gone already; the name goes with the connection
    }
  }
  BusServer(const BusServer&) = delete;
  BusServer& operator=(const BusServer&) = delete;

 private:
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<api::ManagerObject> object_;
};

}  // namespace runscope::testing
