#include "nomad/plugin_state.hpp"

#include "common/error.hpp"

namespace runscope::nomad {

void Lifetime::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
}

bool Lifetime::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

bool Lifetime::wait_for(std::chrono::nanoseconds budget) const {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, budget, [this] { return stopping_; });
}

void Lifetime::wait() const {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return stopping_; });
}

void PluginState::configure(const PluginConfig& config) {
  std::optional<DaemonLink> old;  // dropped outside the lock: a feed's destructor joins its thread
  std::lock_guard lock(mutex_);
  if (link_ && config.bus != config_.bus) old = std::exchange(link_, std::nullopt);
  config_ = config;
}

PluginConfig PluginState::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

DaemonLink PluginState::link() {
  std::lock_guard lock(mutex_);
  if (!link_) link_ = connect_(config_.bus);
  return *link_;
}

void TaskStore::put(const std::string& task_id, TaskRecord record) {
  std::lock_guard lock(mutex_);
  tasks_.insert_or_assign(task_id, std::move(record));
}

TaskRecord TaskStore::get(const std::string& task_id) const {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) {
    throw Error(ErrorKind::not_found, "task " + task_id + " is not known to this plugin (not started here, or "
                                      "not recovered with RecoverTask)");
  }
  return it->second;
}

bool TaskStore::contains(const std::string& task_id) const {
  std::lock_guard lock(mutex_);
  return tasks_.count(task_id) > 0;
}

void TaskStore::erase(const std::string& task_id) {
  std::lock_guard lock(mutex_);
  tasks_.erase(task_id);
}

bool TaskStore::held_by_other(const TaskId& id, const std::string& task_id) const {
  std::lock_guard lock(mutex_);
  for (const auto& [other, record] : tasks_) {
    if (record.id == id && other != task_id) return true;
  }
  return false;
}

std::optional<std::string> TaskStore::task_id_of(const TaskId& id) const {
  std::lock_guard lock(mutex_);
  for (const auto& [task_id, record] : tasks_) {
    if (record.id == id) return task_id;
  }
  return std::nullopt;
}

}  // namespace runscope::nomad
