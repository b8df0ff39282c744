#include "driver/task_compile.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "driver/catalog.hpp"

namespace runscope::driver {

void validate_task(const TaskSpec& spec) { default_catalog().validate(spec); }

CompiledTask compile_task(const TaskSpec& spec, const TaskDefaults& defaults,
                          std::optional<Credentials> credentials) {
  validate_task(spec);
  CompiledTask out{TaskId(spec.alloc.value_or(random_uuid()), spec.task), {}, {}, {}};
  out.limits.memory_max = spec.resources.memory_max;
  out.limits.cpu_weight = spec.resources.cpu_weight;
  out.limits.pids_max = spec.resources.pids_max;
  out.spawn = default_catalog().get(spec.driver).to_spawn(spec, defaults.base_env);
  out.spawn.credentials = std::move(credentials);
  out.kill.signal = spec.kill_signal.value_or(defaults.kill_signal);
  out.kill.timeout = spec.kill_timeout.value_or(defaults.kill_timeout);
  return out;
}

void check_uid_allowed(uid_t uid, const std::vector<uid_t>& denied) {
  if (std::find(denied.begin(), denied.end(), uid) != denied.end()) {
    throw Error(ErrorKind::permission,
                "uid " + std::to_string(uid) + " is not allowed to run tasks (it is in task.denied_uids)");
  }
}

}  // namespace runscope::driver
