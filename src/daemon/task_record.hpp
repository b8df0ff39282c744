// What the daemon keeps about one task on disk (state_dir/tasks/<cgroup_name>/task.json), written
// atomically. Identity (alloc, task, owner) comes from here after a restart, never from a name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "cgroup/cgroup.hpp"
#include "daemon/task_service.hpp"

namespace runscope::daemon {

inline constexpr const char* kTasksDir = "tasks";
inline constexpr const char* kTaskFile = "task.json";
inline constexpr int kRecordVersion = 1;

struct TaskRecord {
  TaskInfo info;
  cgroup::CpuPartition partition = cgroup::CpuPartition::none;
  pid_t shim_pid = 0;
  std::uint64_t shim_start_time = 0;
  // Saved before the kill signal is sent, so a daemon that dies mid-stop still reports the task
  // `killed` after its restart (absent in older files: false).
  bool stop_requested = false;
};

std::string to_json_text(const TaskRecord& record);
// Throws Error(invalid_argument) naming the field when the text is not a valid record.
TaskRecord parse_task_record(const std::string& text);

void write_task_record(const std::filesystem::path& task_dir, const TaskRecord& record);
TaskRecord read_task_record(const std::filesystem::path& task_dir);  // message names the file

// A TaskInfo with everything but the id empty (TaskId has no default).
TaskInfo blank_info(TaskId id);

TaskState parse_task_state(const std::string& text);

}  // namespace runscope::daemon
