// TaskManager::rebuild_record: a task whose task.json is missing or corrupt is rebuilt from what
// survives instead of being killed (docs/faults.md): launch.json (written by the daemon before
// the shim started: identity, argv, run-as uid, reserved cores), the task's cgroup (its partition,
// its processes) and the shim found through them. exit.json then says how it ended, as usual.
#include <algorithm>
#include <sstream>

#include "common/error.hpp"
#include "common/file.hpp"
#include "daemon/task_internal.hpp"
#include "driver/journal_forwarder.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {

namespace fs = std::filesystem;

namespace {

constexpr const char* kShimName = "runscope-shim";
constexpr const char* kCoresVar = "RUNSCOPE_CPU_CORES=";

// Field 4 of /proc/PID/stat; 0 when the process is gone.
pid_t parent_of(const fs::path& proc, pid_t pid) {
  auto stat = read_file_if_exists(proc / std::to_string(pid) / "stat");
  if (!stat) return 0;
  auto close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat->substr(close + 1));
  std::string state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

std::vector<std::string> command_line(const fs::path& proc, pid_t pid) {
  auto text = read_file_if_exists(proc / std::to_string(pid) / "cmdline").value_or("");
  std::vector<std::string> argv;
  std::istringstream in(text);
  for (std::string arg; std::getline(in, arg, '\0');) argv.push_back(arg);
  return argv;
}

// The shim is the parent of a process in the task's cgroup whose command line is
// `runscope-shim TASK_DIR ...`: only root can put a child into our cgroup, so a foreign process
// can't pass for it. Returns {shim, main pid}.
std::pair<pid_t, pid_t> find_shim(const fs::path& proc, const std::vector<pid_t>& members, const fs::path& dir) {
  for (pid_t pid : members) {
    pid_t parent = parent_of(proc, pid);
    if (parent <= 1) continue;
    auto argv = command_line(proc, parent);
    if (argv.size() >= 2 && fs::path(argv[0]).filename() == kShimName && fs::path(argv[1]) == dir) {
      auto own = command_line(proc, pid);
      if (own.size() >= 2 && own[1] == driver::kForwarderFlag) continue;  // its journal forwarder, not the task
      return {parent, pid};
    }
  }
  return {0, 0};
}

driver::TaskSpec spec_from(const driver::ShimLaunch& launch) {
  driver::TaskSpec spec;
  spec.alloc = launch.alloc;
  spec.task = launch.task;
  if (!launch.argv.empty()) {
    spec.config = {{"command", launch.argv[0]},
                   {"args", std::vector<std::string>(launch.argv.begin() + 1, launch.argv.end())}};
  }
  if (!launch.cwd.empty()) spec.config["cwd"] = launch.cwd;
  return spec;
}

}  // namespace

std::optional<TaskRecord> TaskManager::rebuild_record(const fs::path& dir, const std::string& why) {
  driver::ShimLaunch launch;
  try {
    launch = driver::parse_shim_launch(read_file(dir / driver::kLaunchFile));
  } catch (const std::exception& e) {
    log(why + "; " + e.what() + "; this task's state is lost, its cgroup will be removed");
    return std::nullopt;
  }
  TaskId id(launch.alloc, launch.task);
  if (id.cgroup_name() != dir.filename().string()) {
    log(why + "; " + (dir / driver::kLaunchFile).string() + " names task " + id.display() +
        ", not this folder's; its cgroup will be removed");
    return std::nullopt;
  }
  TaskRecord record{blank_info(id)};
  record.info.owner = launch.credentials ? launch.credentials->uid : 0;
  record.info.spec = spec_from(launch);
  record.info.manager = backend_.manager_name();
  for (const auto& var : launch.env) {
    if (var.rfind(kCoresVar, 0) == 0) record.info.cpus = CpuSet::parse(var.substr(std::string(kCoresVar).size()));
  }
  auto existing = backend_.existing();
  auto it = std::find_if(existing.begin(), existing.end(), [&](const auto& e) { return e.first == id.cgroup_name(); });
  std::string found = "no cgroup";
  if (it != existing.end()) {
    record.partition = it->second;
    // Only a look: recover_one adopts it again, and nothing here may kill the task.
    std::vector<pid_t> members;
    try {
      auto cg = backend_.adopt(id.cgroup_name(), it->second);
      record.info.location = cg->location();
      try {
        members = cg->pids();
      } catch (const std::exception& e) {
        log(id.display() + ": listing its processes: " + e.what());
      }
      cg->disown();
    } catch (const std::exception& e) {
      log(id.display() + ": looking at its cgroup: " + e.what());
    }
    auto [shim, main] = find_shim(options_.proc_root, members, dir);
    found = "its cgroup";
    if (shim > 0) {
      record.info.state = TaskState::running;
      record.info.pid = main;
      record.shim_pid = shim;
      record.shim_start_time = driver::process_start_time(shim, options_.proc_root).value_or(0);
      found += " and its supervisor (pid " + std::to_string(shim) + ")";
    }
  }
  log(why + "; rebuilt task " + id.display() + " from " + driver::kLaunchFile + " and " + found);
  try {
    write_task_record(dir, record);
  } catch (const Error& e) {
    log("cannot save the rebuilt state of " + id.display() + ": " + e.what());
  }
  return record;
}

}  // namespace runscope::daemon
