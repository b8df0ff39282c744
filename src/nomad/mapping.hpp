// What maps to what between Nomad's driver protocol and runscoped's task API (docs/nomad.md,
// "What maps to what"): pure functions, unit-tested without a daemon.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/task_id.hpp"
#include "nomad/config.hpp"
#include "nomad/drivers.pb.h"

namespace runscope::nomad {

namespace proto = hashicorp::nomad::plugins::drivers::proto;

// alloc id -> runscope alloc, task name -> runscope task; throws Error(invalid_argument).
TaskId task_id_of(const proto::TaskConfig& task);

// runscoped's StartTask document for this Nomad task and its decoded `config` block. The task's
// stdout and stderr go to Nomad's log paths (stdout_path, stderr_path) through an exec redirect;
// the task runs in its task dir (alloc_dir/<name>) when it exists.
nlohmann::json runscope_spec(const proto::TaskConfig& task, const TaskConfig& config);

// Nomad's cpu_shares (MHz) as a cgroup v2 cpu.weight, the conversion runc and systemd use.
std::uint64_t cpu_weight_from_shares(std::int64_t shares);

// What the plugin keeps in TaskHandle.driver_state, so a restarted plugin finds the task.
struct DriverState {
  TaskId id;
  std::optional<int> kill_signal;  // the task config's, if set
};
std::string encode_driver_state(const DriverState& state);
DriverState decode_driver_state(const std::string& bytes);  // throws Error(invalid_argument)

// A task as InspectTask reports it, from runscoped's InspectTask document.
struct TaskView {
  std::string state;  // pending, running, exited, killed, oom_killed, failed, lost
  std::uint32_t pid = 0;
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool oom_killed = false;
  std::optional<std::chrono::system_clock::time_point> started_at, finished_at;
  bool final() const;
};
TaskView task_view(const nlohmann::json& inspected);
bool is_final_state(const std::string& state);

proto::ExitResult exit_result(const TaskView& view);
proto::TaskStatus task_status(const std::string& task_id, const std::string& name, const TaskView& view);
void set_timestamp(google::protobuf::Timestamp& out, std::chrono::system_clock::time_point t);
std::chrono::nanoseconds to_duration(const google::protobuf::Duration& d);

// One stats sample: runscoped's TaskStats counters at a moment.
struct StatsSample {
  std::map<std::string, std::uint64_t> counters;
  std::chrono::steady_clock::time_point at;
};
// Nomad's usage from two samples of the same task (CPU as percent of one CPU over the interval);
// with no earlier sample, CPU is averaged over the task's life since `started`.
proto::TaskResourceUsage resource_usage(const StatsSample& now, const std::optional<StatsSample>& before,
                                        std::chrono::nanoseconds lifetime);

}  // namespace runscope::nomad
