// The fixture of the tests that drive SystemdBackend against the contained systemd: a manager on
// the system bus, the backend over it, and the questions those tests ask systemd about a unit.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/clock.hpp"
#include "common/task_id.hpp"
#include "systemd/contained.hpp"
#include "systemd/scope_backend.hpp"
#include "systemd/sdbus_manager.hpp"

namespace runscope::systemd_testing {

class ContainedBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RUNSCOPE_REQUIRE_CONTAINED_SYSTEMD();
    manager_ = std::make_unique<systemd::SdbusSystemdManager>();
    backend_ = std::make_unique<systemd::SystemdBackend>(*manager_);
  }

  // A task of an alloc ID no other test (or run) uses.
  static TaskId new_task(const std::string& alloc_stem, const std::string& task) {
    return TaskId(unique_name(alloc_stem), task);
  }
  static Deadline deadline(std::chrono::seconds budget = std::chrono::seconds(10)) {
    return Deadline(system_clock(), budget);
  }
  bool unit_gone(const std::string& unit) {
    return eventually([&] { return manager_->list_units_by_patterns({}, {unit}).empty(); });
  }
  std::string active_state(const std::string& unit) {
    auto units = manager_->list_units_by_patterns({}, {unit});
    return units.empty() ? "gone" : units.front().active_state;
  }

  std::unique_ptr<systemd::SdbusSystemdManager> manager_;
  std::unique_ptr<systemd::SystemdBackend> backend_;
};

}  // namespace runscope::systemd_testing
