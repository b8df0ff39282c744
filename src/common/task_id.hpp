// Who a task is: an allocation ID and a task name, validated once, and the names runscope
// derives from them (systemd scope unit names on v2, cgroup folder names on v1).
// Identity is never parsed back out of these names: both parts may contain '-'.
#pragma once

#include <string>
#include <string_view>

namespace runscope {

class TaskId {
 public:
  // Throws Error(invalid_argument) naming the field ("alloc ID" / "task name") and the value.
  TaskId(std::string alloc, std::string task);

  const std::string& alloc() const { return alloc_; }
  const std::string& task() const { return task_; }

  std::string unit_name() const;    // "<alloc>-<task>.scope", escaped
  std::string cgroup_name() const;  // "<alloc>-<task>", escaped
  std::string display() const;      // "alloc/task" for messages

  bool operator==(const TaskId&) const = default;
  auto operator<=>(const TaskId&) const = default;

 private:
  std::string alloc_;
  std::string task_;
};

// systemd-style escaping: [A-Za-z0-9:_.-] pass, a leading '.' and everything else become \xNN.
std::string escape_name(std::string_view raw);

// Throws Error(invalid_argument) when `value` can't be a name part: empty, ".", "..", '/', NUL,
// control characters, invalid UTF-8, or over 255 bytes once escaped.
void validate_name_part(std::string_view field, std::string_view value);

// A random RFC 4122 version 4 UUID, for allocations that were not given an ID.
std::string random_uuid();

}  // namespace runscope
