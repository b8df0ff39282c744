// What the plugin's services share: the shutdown signal, the plugin config with the link to
// runscoped made from it, and the tasks this plugin has started or recovered.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "nomad/config.hpp"
#include "nomad/daemon.hpp"
#include "nomad/drivers.pb.h"

namespace runscope::nomad {

// Set once, by GRPCController.Shutdown or SIGTERM; every loop that waits watches it.
class Lifetime {
 public:
  void request_stop();
  bool stopping() const;
  // Waits up to `budget`; true when stopping.
  bool wait_for(std::chrono::nanoseconds budget) const;
  void wait() const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;
};

class PluginState {
 public:
  using Connect = std::function<DaemonLink(const std::string& bus)>;
  explicit PluginState(Connect connect = connect_daemon) : connect_(std::move(connect)) {}

  // SetConfig: reconnects when the bus changed.
  void configure(const PluginConfig& config);
  PluginConfig config() const;
  // The link for the current config (the defaults until SetConfig), made on first use.
  DaemonLink link();

 private:
  Connect connect_;
  mutable std::mutex mutex_;
  PluginConfig config_;
  std::optional<DaemonLink> link_;
};

namespace proto = hashicorp::nomad::plugins::drivers::proto;

struct TaskRecord {
  TaskId id;
  proto::TaskConfig config;
  std::optional<int> kill_signal;  // the task config's; runscope's default applies otherwise
};

// Nomad names tasks by its task_id (alloc/task/random); runscope by alloc and task.
class TaskStore {
 public:
  void put(const std::string& task_id, TaskRecord record);
  // Throws Error(not_found) naming the task_id.
  TaskRecord get(const std::string& task_id) const;
  bool contains(const std::string& task_id) const;
  void erase(const std::string& task_id);
  // Whether a task_id other than `task_id` names the same runscope task.
  bool held_by_other(const TaskId& id, const std::string& task_id) const;
  // The Nomad task_id of a runscope task, if this plugin knows it.
  std::optional<std::string> task_id_of(const TaskId& id) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, TaskRecord> tasks_;
};

}  // namespace runscope::nomad
