#include "nomad/mapping.hpp"

#include <algorithm>
#include <filesystem>

#include "common/error.hpp"
#include "config/config.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::nomad {
namespace {

// Opens Nomad's log FIFOs (or files) in the task's own process, then becomes the command: the
// task's pid is the command's, and a FIFO with no reader blocks the task, not the daemon.
constexpr const char* kRedirect = "out=$1 err=$2; shift 2; exec \"$@\" >>\"$out\" 2>>\"$err\"";

}  // namespace

TaskId task_id_of(const proto::TaskConfig& task) {
  if (task.alloc_id().empty()) throw Error(ErrorKind::invalid_argument, "task has no alloc_id");
  return TaskId(task.alloc_id(), task.name());
}

std::uint64_t cpu_weight_from_shares(std::int64_t shares) {
  if (shares <= 2) return 1;
  auto weight = 1 + ((shares - 2) * 9999) / 262142;
  return static_cast<std::uint64_t>(std::clamp<std::int64_t>(weight, 1, 10000));
}

nlohmann::json runscope_spec(const proto::TaskConfig& task, const TaskConfig& config) {
  auto id = task_id_of(task);
  nlohmann::json cfg = {{"command", config.command}, {"args", config.args}};
  if (!task.stdout_path().empty() && !task.stderr_path().empty()) {
    nlohmann::json args = {"-c", kRedirect, "runscope-nomad", task.stdout_path(), task.stderr_path(), config.command};
    for (const auto& a : config.args) args.push_back(a);
    cfg = {{"command", "/bin/sh"}, {"args", args}};
  }
  if (!task.alloc_dir().empty()) {
    std::error_code ec;
    auto task_dir = std::filesystem::path(task.alloc_dir()) / task.name();
    if (std::filesystem::is_directory(task_dir, ec)) cfg["cwd"] = task_dir.string();
  }
  nlohmann::json env = nlohmann::json::object();
  for (const auto& [k, v] : task.env()) env[k] = v;
  for (const auto& [k, v] : task.device_env()) env[k] = v;
  for (const auto& [k, v] : config.env) env[k] = v;

  nlohmann::json resources = nlohmann::json::object();
  if (config.cores) resources["cores"] = *config.cores;
  const auto& alloc = task.resources().allocated_resources();
  if (config.memory_max) {
    resources["memory_max"] = std::to_string(*config.memory_max);
  } else if (auto mb = std::max(alloc.memory().memory_max_mb(), alloc.memory().memory_mb()); mb > 0) {
    resources["memory_max"] = std::to_string(mb) + "M";
  }
  if (config.cpu_weight) {
    resources["cpu_weight"] = *config.cpu_weight;
  } else if (alloc.cpu().cpu_shares() > 0) {
    resources["cpu_weight"] = cpu_weight_from_shares(alloc.cpu().cpu_shares());
  }
  if (config.pids_max) resources["pids_max"] = *config.pids_max;

  nlohmann::json spec = {{"alloc", id.alloc()}, {"task", id.task()}, {"config", cfg}, {"env", env},
                         {"resources", resources}};
  auto user = config.user ? *config.user : task.user();
  if (!user.empty()) spec["user"] = user;
  if (config.kill_signal) spec["kill_signal"] = config::signal_name(*config.kill_signal);
  if (config.kill_timeout) spec["kill_timeout"] = std::to_string(config.kill_timeout->count()) + "ns";
  return spec;
}

std::string encode_driver_state(const DriverState& state) {
  nlohmann::json j = {{"version", 1}, {"alloc", state.id.alloc()}, {"task", state.id.task()}};
  j["kill_signal"] = state.kill_signal ? nlohmann::json(*state.kill_signal) : nlohmann::json();
  return j.dump();
}

DriverState decode_driver_state(const std::string& bytes) {
  try {
    auto j = nlohmann::json::parse(bytes);
    if (j.at("version").get<int>() != 1) {
      throw Error(ErrorKind::invalid_argument, "driver_state version " + j["version"].dump() + " is not 1");
    }
    DriverState s{TaskId(j.at("alloc").get<std::string>(), j.at("task").get<std::string>()), std::nullopt};
    if (j.contains("kill_signal") && !j["kill_signal"].is_null()) s.kill_signal = j["kill_signal"].get<int>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::invalid_argument, std::string("driver_state is not runscope's: ") + e.what());
  }
}

bool is_final_state(const std::string& state) {
  return state == "exited" || state == "killed" || state == "oom_killed" || state == "failed" || state == "lost";
}

bool TaskView::final() const { return is_final_state(state); }

TaskView task_view(const nlohmann::json& j) {
  TaskView v;
  v.state = j.value("state", "");
  if (j.contains("pid") && j["pid"].is_number()) v.pid = j["pid"].get<std::uint32_t>();
  if (j.contains("exit_code") && j["exit_code"].is_number()) v.exit_code = j["exit_code"].get<int>();
  if (j.contains("signal") && j["signal"].is_number()) v.signal = j["signal"].get<int>();
  v.oom_killed = j.contains("oom_killed") && j["oom_killed"].is_boolean() && j["oom_killed"].get<bool>();
  if (j.contains("started_at") && j["started_at"].is_string()) v.started_at = driver::parse_time(j["started_at"]);
  if (j.contains("finished_at") && j["finished_at"].is_string()) v.finished_at = driver::parse_time(j["finished_at"]);
  return v;
}

proto::ExitResult exit_result(const TaskView& view) {
  proto::ExitResult r;
  r.set_exit_code(view.exit_code.value_or(0));
  r.set_signal(view.signal.value_or(0));
  r.set_oom_killed(view.oom_killed || view.state == "oom_killed");
  return r;
}

void set_timestamp(google::protobuf::Timestamp& out, std::chrono::system_clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<std::int32_t>(ns % 1000000000));
}

std::chrono::nanoseconds to_duration(const google::protobuf::Duration& d) {
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

proto::TaskStatus task_status(const std::string& task_id, const std::string& name, const TaskView& view) {
  proto::TaskStatus s;
  s.set_id(task_id);
  s.set_name(name);
  s.set_state(view.final() ? proto::EXITED : view.state == "running" ? proto::RUNNING : proto::UNKNOWN);
  if (view.started_at) set_timestamp(*s.mutable_started_at(), *view.started_at);
  if (view.finished_at) set_timestamp(*s.mutable_completed_at(), *view.finished_at);
  if (view.final()) *s.mutable_result() = exit_result(view);
  return s;
}

proto::TaskResourceUsage resource_usage(const StatsSample& now, const std::optional<StatsSample>& before,
                                        std::chrono::nanoseconds lifetime) {
  auto get = [](const StatsSample& s, const char* key) -> std::optional<std::uint64_t> {
    auto it = s.counters.find(key);
    return it == s.counters.end() ? std::nullopt : std::optional(it->second);
  };
  proto::TaskResourceUsage usage;
  auto* cpu = usage.mutable_cpu();
  auto user = get(now, "cpu_user_usec").value_or(0), system = get(now, "cpu_system_usec").value_or(0);
  double window_usec = static_cast<double>(lifetime.count()) / 1000.0;
  if (before) {
    user -= std::min(user, get(*before, "cpu_user_usec").value_or(0));
    system -= std::min(system, get(*before, "cpu_system_usec").value_or(0));
    window_usec = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(now.at - before->at).count());
  }
  if (window_usec > 0) {
    cpu->set_user_mode(100.0 * static_cast<double>(user) / window_usec);
    cpu->set_system_mode(100.0 * static_cast<double>(system) / window_usec);
    cpu->set_percent(cpu->user_mode() + cpu->system_mode());
    for (auto f : {proto::CPUUsage::USER_MODE, proto::CPUUsage::SYSTEM_MODE, proto::CPUUsage::PERCENT}) {
      cpu->add_measured_fields(f);
    }
  }
  auto* mem = usage.mutable_memory();
  if (auto current = get(now, "memory_current")) {
    mem->set_usage(*current);
    mem->add_measured_fields(proto::MemoryUsage::USAGE);
  }
  if (auto peak = get(now, "memory_peak")) {
    mem->set_max_usage(*peak);
    mem->add_measured_fields(proto::MemoryUsage::MAX_USAGE);
  }
  return usage;
}

}  // namespace runscope::nomad
