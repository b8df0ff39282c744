// What the plugin needs from runscoped, behind one interface: the real one talks D-Bus
// (bus_daemon.cpp); the seam lets the Driver service's plumbing be tested without a daemon.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"
#include "driver/enter_spec.hpp"

namespace runscope::nomad {

// A command to run inside a running task: runscoped's EnterTask spec (driver/enter_spec.hpp).
using EnterSpec = driver::EnterSpec;

inline constexpr const char* kExecNeedsEnterTask =
    "exec needs runscoped's EnterTask method, which this runscoped does not offer (upgrade runscope)";

class Daemon {
 public:
  virtual ~Daemon() = default;
  virtual TaskId start(const std::string& spec_json) = 0;
  virtual void stop(const TaskId& id, std::optional<Duration> timeout) = 0;
  virtual void signal(const TaskId& id, int sig) = 0;
  virtual void destroy(const TaskId& id) = 0;
  virtual nlohmann::json inspect(const TaskId& id) = 0;
  virtual std::map<std::string, std::uint64_t> stats(const TaskId& id) = 0;
  virtual std::map<std::string, std::string> fingerprint() = 0;
  virtual std::string version() = 0;
  // Whether enter() works against this daemon (the Capabilities' exec flag).
  virtual bool can_enter() const = 0;
  // Runs the command in the task's cgroup with the given fds; returns its exit code, or 128+N
  // when signal N ended it. Throws Error(unsupported) where the daemon can't.
  virtual int enter(const TaskId& id, const EnterSpec& spec, int in, int out, int err) = 0;
};

// State changes of tasks as runscoped broadcasts them, fanned out to the plugin's waiters.
class StateFeed {
 public:
  using Callback = std::function<void(const api::StateChange&)>;
  class Subscription {
   public:
    Subscription(StateFeed& feed, std::uint64_t key) : feed_(&feed), key_(key) {}
    ~Subscription() { feed_->unsubscribe(key_); }
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    StateFeed* feed_;
    std::uint64_t key_;
  };
  virtual ~StateFeed() = default;
  // Callbacks run on the feed's thread: keep them short (set a flag, queue an item).
  virtual std::unique_ptr<Subscription> subscribe(Callback callback) = 0;

 protected:
  virtual void unsubscribe(std::uint64_t key) = 0;
};

// runscoped over D-Bus on `bus` (system, session or an address), and its TaskStateChanged feed.
struct DaemonLink {
  std::shared_ptr<Daemon> daemon;
  std::shared_ptr<StateFeed> feed;
};
DaemonLink connect_daemon(const std::string& bus);

}  // namespace runscope::nomad
