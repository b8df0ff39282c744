#include "cli/run.hpp"

#include <toml++/toml.h>

#include <iostream>
#include <sstream>

#include "cli/daemon_client.hpp"
#include "common/task_id.hpp"
#include "common/units.hpp"
#include "config/config.hpp"
#include "driver/task_spec.hpp"

namespace runscope::cli {
namespace {

// While waiting, the task's state is asked again this often, in case a signal was missed (the
// daemon restarted between our start and its exit).
constexpr auto kWaitPoll = std::chrono::seconds(1);

struct RunOptions {
  std::string alloc, task, memory_max, kill_signal, kill_timeout, user, chdir, log_target, file;
  std::optional<unsigned> cores;
  std::optional<std::uint64_t> cpu_weight, pids_max;
  std::vector<std::string> env, command;
  bool wait = false, json = false;
};

nlohmann::json env_json(const std::vector<std::string>& pairs) {
  auto env = nlohmann::json::object();
  for (const auto& kv : pairs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(ErrorKind::invalid_argument, "--env: '" + kv + "' is not KEY=VALUE");
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

// The spec as the daemon takes it (docs/api.md); the daemon validates every field.
nlohmann::json spec_from_options(const RunOptions& o) {
  if (o.command.empty()) throw Error(ErrorKind::invalid_argument, "run: give a command after -- or --file TASK.toml");
  // Checked here too, so a name JSON can't carry (invalid UTF-8) gets the daemon's message.
  if (!o.alloc.empty()) validate_name_part("alloc", o.alloc);
  if (!o.task.empty()) validate_name_part("task", o.task);
  nlohmann::json config{{"command", o.command.front()},
                        {"args", std::vector<std::string>(o.command.begin() + 1, o.command.end())}};
  if (!o.chdir.empty()) config["cwd"] = o.chdir;
  nlohmann::json spec{{"task", o.task.empty() ? std::filesystem::path(o.command.front()).filename().string() : o.task},
                      {"driver", "raw_exec"},
                      {"config", config}};
  if (!o.alloc.empty()) spec["alloc"] = o.alloc;
  if (!o.env.empty()) spec["env"] = env_json(o.env);
  if (!o.user.empty()) spec["user"] = o.user;
  auto resources = nlohmann::json::object();
  if (o.cores) resources["cores"] = *o.cores;
  if (!o.memory_max.empty()) resources["memory_max"] = o.memory_max;
  if (o.cpu_weight) resources["cpu_weight"] = *o.cpu_weight;
  if (o.pids_max) resources["pids_max"] = *o.pids_max;
  if (!resources.empty()) spec["resources"] = resources;
  if (!o.kill_signal.empty()) spec["kill_signal"] = o.kill_signal;
  if (!o.kill_timeout.empty()) spec["kill_timeout"] = o.kill_timeout;
  if (!o.log_target.empty()) spec["log"] = {{"target", o.log_target}};
  return spec;
}

// A task file is the same document in TOML; the daemon validates it, so this only converts.
nlohmann::json spec_from_file(const RunOptions& o) {
  if (!o.command.empty()) throw Error(ErrorKind::invalid_argument, "run: --file and a command exclude each other");
  std::error_code ec;
  auto bytes = std::filesystem::file_size(o.file, ec);
  if (!ec && bytes > driver::kMaxSpecBytes) {
    throw Error(ErrorKind::invalid_argument, o.file + ": " + std::to_string(bytes) + " bytes, more than the " +
                                                 std::to_string(driver::kMaxSpecBytes) + " a task spec may hold");
  }
  toml::table table;
  try {
    table = toml::parse_file(o.file);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    throw Error(ErrorKind::invalid_argument, o.file + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                                                 ": " + std::string(e.description()));
  }
  std::ostringstream text;
  text << toml::json_formatter(table);
  auto spec = nlohmann::json::parse(text.str());
  if (!o.alloc.empty()) spec["alloc"] = o.alloc;
  if (!o.task.empty()) spec["task"] = o.task;
  return spec;
}

// The spec travels as JSON, which holds only UTF-8: say so instead of failing inside the library.
std::string dump_spec(const nlohmann::json& spec) {
  try {
    return spec.dump();
  } catch (const nlohmann::json::type_error& e) {
    throw Error(ErrorKind::invalid_argument,
                std::string("run: the command, an argument or an --env value is not valid UTF-8 (a task spec is JSON): ") +
                    e.what());
  }
}

// `changed` is set by the TaskStateChanged watch installed before the start.
int wait_for(api::ManagerClient& client, const TaskId& id, bool& changed, bool json) {
  std::optional<nlohmann::json> final_state;
  auto check = [&] {
    auto j = client.inspect(id);
    if (j.at("state") != "pending" && j.at("state") != "running") final_state = j;
  };
  check();
  auto next_check = std::chrono::steady_clock::now() + kWaitPoll;
  while (!final_state) {
    changed = false;
    client.pump(std::chrono::duration_cast<std::chrono::milliseconds>(kWaitPoll));
    if (changed || std::chrono::steady_clock::now() >= next_check) {
      check();
      next_check = std::chrono::steady_clock::now() + kWaitPoll;
    }
  }
  if (json) print_json(*final_state);
  return exit_code_of(*final_state);
}

int run_run(const Globals& globals, const RunOptions& o) {
  auto spec = o.file.empty() ? spec_from_options(o) : spec_from_file(o);
  auto client = connect_daemon(globals);
  // Subscribe before starting, so an exit right after the start is not missed.
  bool changed = false;
  if (o.wait) client->watch([&changed](const api::StateChange&) { changed = true; });
  auto id = client->start(dump_spec(spec));
  if (o.wait) return wait_for(*client, id, changed, o.json);
  if (o.json) {
    print_json({{"alloc", id.alloc()}, {"task", id.task()}});
  } else {
    std::cout << id.alloc() << " " << id.task() << "\n";
  }
  return 0;
}

}  // namespace

Command add_run(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<RunOptions>();
  auto* sub = app.add_subcommand("run", "Start a task under runscoped (detached unless --wait)");
  sub->add_option("--file", o->file, "Task file (TOML, the StartTask spec)")->check(CLI::ExistingFile);
  sub->add_option("--alloc", o->alloc, "Allocation ID (default: a random UUID)");
  sub->add_option("--task", o->task, "Task name (default: the command's basename)");
  sub->add_option("--cores", o->cores, "Exclusive cores for the task");
  sub->add_option("--memory-max", o->memory_max, "Memory limit, e.g. 512M");
  sub->add_option("--cpu-weight", o->cpu_weight, "CPU weight 1..10000");
  sub->add_option("--pids-max", o->pids_max, "Process count limit");
  sub->add_option("--kill-signal", o->kill_signal, "Graceful stop signal (default: config task.kill_signal)");
  sub->add_option("--kill-timeout", o->kill_timeout, "Grace period before the cgroup kill (default: config)");
  sub->add_option("--user", o->user, "Run as USER (root callers only; others run as themselves)");
  sub->add_option("--chdir", o->chdir, "Working directory (absolute)");
  sub->add_option("--env", o->env, "Set KEY=VALUE in the task's environment (repeatable)");
  sub->add_option("--log-target", o->log_target, "auto, file or journal");
  sub->add_flag("--wait", o->wait, "Follow the task and exit with its exit code");
  sub->add_flag("--json", o->json, "Print JSON");
  sub->add_option("command", o->command, "The command and its arguments (after --)");
  return {sub, [&globals, o] { return run_run(globals, *o); }};
}

}  // namespace runscope::cli
