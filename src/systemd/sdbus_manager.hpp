// SystemdManager over sdbus-c++ 1.2: ONE persistent bus connection per manager, driven by a
// loop thread this object owns. The JobRemoved match and Subscribe() are in place before any
// call, calls in flight are bounded, and a cut connection is re-made (with backoff) and the
// operation retried once.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>

#include "common/clock.hpp"
#include "systemd/manager.hpp"

namespace runscope::systemd {

struct SdbusManagerOptions {
  std::string address;  // a D-Bus address ("unix:path=..."); empty: the system bus
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);  // per operation, job included
  unsigned max_in_flight = 64;  // the system bus caps pending replies per connection at 128
  Clock* clock = nullptr;       // for backoff and deadlines; null: the steady clock
};

class BusLink;  // one live connection; defined in sdbus_manager.cpp

class SdbusSystemdManager final : public SystemdManager {
 public:
  // Connects and subscribes; throws BusError when the bus or systemd does not answer.
  explicit SdbusSystemdManager(SdbusManagerOptions options = {});
  ~SdbusSystemdManager() override;
  SdbusSystemdManager(const SdbusSystemdManager&) = delete;
  SdbusSystemdManager& operator=(const SdbusSystemdManager&) = delete;

  void start_transient_unit(const std::string& name, const std::vector<UnitProperty>& props) override;
  // The call and its job wait are events on the connection's loop: no thread waits. Without a
  // free call slot or a live link it falls back to the blocking call (which waits for a slot and
  // reconnects). No retry here: a caller that gets an error retries with the blocking call.
  void start_transient_unit_async(const std::string& name, const std::vector<UnitProperty>& props,
                                  Done done) override;
  void stop_unit(const std::string& name) override;
  void reset_failed_unit(const std::string& name) override;
  void set_unit_properties(const std::string& name, bool runtime,
                           const std::vector<UnitProperty>& props) override;
  PropertyValue get_unit_property(const std::string& name, const std::string& interface,
                                  const std::string& property) override;
  std::string control_group(const std::string& name) override;
  std::optional<UnitStatus> unit_status(const std::string& name) override;
  std::vector<UnitStatus> list_units_by_patterns(const std::vector<std::string>& states,
                                                 const std::vector<std::string>& patterns) override;
  std::string version() override;

  // How many times the connection was re-made (for tests and logs).
  std::uint64_t reconnects() const { return reconnects_.load(); }

 private:
  // Runs op(link, deadline) with a call slot held; on a cut connection reconnects and retries once.
  template <typename Op>
  auto with_retry(Op&& op);
  std::shared_ptr<BusLink> current_link();
  void reconnect(const std::shared_ptr<BusLink>& broken, const Deadline& deadline);

  SdbusManagerOptions options_;
  Clock& clock_;
  std::counting_semaphore<1024> slots_;
  std::mutex link_mutex_;
  std::shared_ptr<BusLink> link_;
  std::atomic<std::uint64_t> reconnects_{0};
};

}  // namespace runscope::systemd
