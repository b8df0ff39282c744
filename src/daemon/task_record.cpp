#include "daemon/task_record.hpp"

#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::daemon {

using json = nlohmann::json;

namespace {

const char* partition_name(cgroup::CpuPartition p) {
  switch (p) {
    case cgroup::CpuPartition::shared: return "shared";
    case cgroup::CpuPartition::reserved: return "reserved";
    case cgroup::CpuPartition::none: break;
  }
  return "none";
}

cgroup::CpuPartition parse_partition(const std::string& s) {
  if (s == "shared") return cgroup::CpuPartition::shared;
  if (s == "reserved") return cgroup::CpuPartition::reserved;
  if (s == "none") return cgroup::CpuPartition::none;
  throw Error(ErrorKind::invalid_argument, "partition: unknown value '" + s + "'");
}

std::optional<WallTime> opt_time(const json& j) {
  if (j.is_null()) return std::nullopt;
  return driver::parse_time(j.get<std::string>());
}

}  // namespace

TaskInfo blank_info(TaskId id) {
  return TaskInfo{std::move(id), 0, TaskState::pending, 0, {}, {}, {}, {}, false, {}, {}, {}, {}, {}};
}

TaskState parse_task_state(const std::string& text) {
  for (auto s : {TaskState::pending, TaskState::running, TaskState::exited, TaskState::killed, TaskState::oom_killed,
                 TaskState::failed, TaskState::lost}) {
    if (to_string(s) == text) return s;
  }
  throw Error(ErrorKind::invalid_argument, "state: unknown value '" + text + "'");
}

std::string to_json_text(const TaskRecord& r) {
  json j = {{"version", kRecordVersion},
            {"info", r.info.to_json()},
            {"partition", partition_name(r.partition)},
            {"shim_pid", r.shim_pid},
            {"shim_start_time", r.shim_start_time},
            {"stop_requested", r.stop_requested}};
  return j.dump(2) + "\n";
}

TaskRecord parse_task_record(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::invalid_argument, "not a JSON object");
  try {
    if (j.at("version").get<int>() != kRecordVersion) {
      throw Error(ErrorKind::invalid_argument, "version: " + j["version"].dump() + " is not " + std::to_string(kRecordVersion));
    }
    const json& i = j.at("info");
    TaskRecord r{blank_info(TaskId(i.at("alloc").get<std::string>(), i.at("task").get<std::string>()))};
    r.info.owner = i.at("owner").get<uid_t>();
    r.info.state = parse_task_state(i.at("state").get<std::string>());
    r.info.pid = i.at("pid").get<pid_t>();
    r.info.manager = i.at("manager").get<std::string>();
    r.info.location = i.at(r.info.manager == "systemd" ? "unit" : "cgroup").get<std::string>();
    if (!i.at("exit_code").is_null()) r.info.exit_code = i["exit_code"].get<int>();
    if (!i.at("signal").is_null()) r.info.signal = i["signal"].get<int>();
    r.info.oom_killed = i.at("oom_killed").get<bool>();
    r.info.started_at = opt_time(i.at("started_at"));
    r.info.finished_at = opt_time(i.at("finished_at"));
    r.info.usage = driver::Usage::from_json(i);
    if (!i.at("cpus").is_null()) r.info.cpus = CpuSet::parse(i["cpus"].get<std::string>());
    r.info.spec = driver::parse_task_spec_json(i.at("spec").dump());
    r.partition = parse_partition(j.at("partition").get<std::string>());
    r.shim_pid = j.at("shim_pid").get<pid_t>();
    r.shim_start_time = j.at("shim_start_time").get<std::uint64_t>();
    r.stop_requested = j.value("stop_requested", false);
    return r;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::invalid_argument, e.what());
  }
}

void write_task_record(const std::filesystem::path& dir, const TaskRecord& r) {
  write_file_atomic(dir / kTaskFile, to_json_text(r), 0600);
}

TaskRecord read_task_record(const std::filesystem::path& dir) {
  auto path = dir / kTaskFile;
  auto text = read_file_if_exists(path);
  if (!text) throw Error(ErrorKind::not_found, path.string() + ": missing");
  try {
    return parse_task_record(*text);
  } catch (const Error& e) {
    throw Error(ErrorKind::invalid_argument, path.string() + ": " + e.what());
  }
}

}  // namespace runscope::daemon
