#include "cli/task_flags.hpp"

#include <charconv>
#include <filesystem>
#include <utility>

#include "common/error.hpp"
#include "common/units.hpp"

namespace runscope::cli {
namespace {

using nlohmann::json;

// Spec fields and the flags that set them, for messages.
constexpr std::pair<const char*, const char*> kFlagOf[] = {
    {"resources.memory_max", "--memory-max"}, {"resources.cpu_weight", "--cpu-weight"},
    {"resources.pids_max", "--pids-max"},     {"resources.cores", "--cores"},
    {"kill_signal", "--kill-signal"},         {"kill_timeout", "--kill-timeout"},
    {"config.cwd", "--chdir"},                {"log.target", "--log-target"},
    {"alloc", "--alloc"},                     {"task", "--task"},
    {"user", "--user"},                       {"env", "--env"},
};

// "resources.cpu_weight: must be ..." -> "--cpu-weight: must be ...".
Error in_flag_terms(const Error& e) {
  const std::string message = e.what();
  for (const auto& [field, flag] : kFlagOf) {
    const std::string_view f(field);
    if (message.size() > f.size() && message.starts_with(f) && std::string_view(":. [").find(message[f.size()]) !=
                                                                    std::string_view::npos) {
      const char next = message[f.size()];
      return Error(e.kind(), flag + std::string(next == '.' ? " " : "") + message.substr(f.size() + (next == '.')));
    }
  }
  return e;
}

// A number where the text is one (the spec takes integers), else the text, which the validator
// then refuses with the value shown.
json integer_or_text(const std::string& text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) return value;
  return text;
}

json env_object(const std::vector<std::string>& pairs) {
  auto env = json::object();
  for (const auto& kv : pairs) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(ErrorKind::invalid_argument, "--env: '" + kv + "' is not KEY=VALUE");
    env[kv.substr(0, eq)] = kv.substr(eq + 1);  // a later --env of the same key wins
  }
  return env;
}

json resources(const TaskFlags& f) {
  auto r = json::object();
  if (f.cores) r["cores"] = *f.cores;
  if (!f.memory_max.empty()) r["memory_max"] = f.memory_max;  // a size: "512M" or bytes
  if (!f.cpu_weight.empty()) r["cpu_weight"] = integer_or_text(f.cpu_weight);
  if (!f.pids_max.empty()) r["pids_max"] = integer_or_text(f.pids_max);
  return r;
}

}  // namespace

void add_task_flags(CLI::App& sub, TaskFlags& f, FlagsFor command) {
  const bool run = command == FlagsFor::run;
  sub.add_option("--alloc", f.alloc, "Allocation ID (default: a random UUID)");
  sub.add_option("--task", f.task, "Task name (default: the command's basename)");
  sub.add_option("--memory-max", f.memory_max, "Memory limit, e.g. 512M");
  sub.add_option("--cpu-weight", f.cpu_weight,
                 "CPU weight " + std::to_string(kMinCpuWeight) + ".." + std::to_string(kMaxCpuWeight));
  sub.add_option("--pids-max", f.pids_max, "Process count limit");
  sub.add_option("--kill-signal", f.kill_signal, "Graceful stop signal (default: config task.kill_signal)");
  sub.add_option("--kill-timeout", f.kill_timeout, "Grace period before the cgroup kill (default: config)");
  sub.add_option("--user", f.user,
                 run ? "Run as USER[:GROUP] (root callers only; others run as themselves)"
                     : "Run as USER[:GROUP] (name or number)");
  sub.add_option("--chdir", f.chdir, run ? "Working directory (absolute)" : "Working directory");
  // One value each time: otherwise CLI11 (2.1) takes a `--` right after it as the end of --env's
  // values rather than of the options, and `exec --env A=1 -- sh -c ...` read -c as runscope's.
  sub.add_option("--env", f.env, "Set KEY=VALUE in the task's environment (repeatable)")
      ->allow_extra_args(false);
  if (run) {
    sub.add_option("--cores", f.cores, "Exclusive cores for the task");
    sub.add_option("--log-target", f.log_target, "auto, file or journal");
  }
  sub.add_option("command", f.command, "The command and its arguments (after --)");
}

json task_document(const TaskFlags& f) {
  if (f.command.empty()) throw Error(ErrorKind::invalid_argument, "no command given (put it after --)");
  json config{{"command", f.command.front()},
              {"args", std::vector<std::string>(f.command.begin() + 1, f.command.end())}};
  if (!f.chdir.empty()) config["cwd"] = f.chdir;
  json spec{{"task", f.task.empty() ? std::filesystem::path(f.command.front()).filename().string() : f.task},
            {"driver", "raw_exec"},
            {"config", config}};
  if (!f.alloc.empty()) spec["alloc"] = f.alloc;
  if (!f.env.empty()) spec["env"] = env_object(f.env);
  if (!f.user.empty()) spec["user"] = f.user;
  if (auto r = resources(f); !r.empty()) spec["resources"] = r;
  if (!f.kill_signal.empty()) spec["kill_signal"] = f.kill_signal;
  if (!f.kill_timeout.empty()) spec["kill_timeout"] = f.kill_timeout;
  if (!f.log_target.empty()) spec["log"] = {{"target", f.log_target}};
  return spec;
}

driver::TaskSpec task_spec_from_flags(const TaskFlags& flags) {
  try {
    return driver::parse_task_spec(task_document(flags));
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::invalid_argument) throw;
    throw in_flag_terms(e);
  }
}

}  // namespace runscope::cli
