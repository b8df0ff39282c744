#include "daemon/task_service.hpp"

namespace runscope::daemon {

std::string to_string(TaskState state) {
  switch (state) {
    case TaskState::pending: return "pending";
    case TaskState::running: return "running";
    case TaskState::exited: return "exited";
    case TaskState::killed: return "killed";
    case TaskState::oom_killed: return "oom_killed";
    case TaskState::failed: return "failed";
    case TaskState::lost: return "lost";
  }
  return "unknown";
}

bool is_final(TaskState state) { return state != TaskState::pending && state != TaskState::running; }

}  // namespace runscope::daemon
