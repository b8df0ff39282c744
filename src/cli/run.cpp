#include "cli/run.hpp"

#include <toml++/toml.h>

#include <iostream>
#include <sstream>

#include "cli/daemon_client.hpp"
#include "cli/task_flags.hpp"
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
  TaskFlags flags;
  std::string file;
  bool wait = false, json = false;
};

// The spec as the daemon takes it (docs/api.md), validated here by the same function `exec` uses
// (the daemon validates it again: it trusts no client).
nlohmann::json spec_from_options(const RunOptions& o) {
  if (o.flags.command.empty()) {
    throw Error(ErrorKind::invalid_argument, "run: give a command after -- or --file TASK.toml");
  }
  return driver::to_json(task_spec_from_flags(o.flags));
}

// A task file is the same document in TOML; the daemon validates it, so this only converts.
nlohmann::json spec_from_file(const RunOptions& o) {
  if (!o.flags.command.empty()) throw Error(ErrorKind::invalid_argument, "run: --file and a command exclude each other");
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
  if (!o.flags.alloc.empty()) spec["alloc"] = o.flags.alloc;
  if (!o.flags.task.empty()) spec["task"] = o.flags.task;
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
  add_task_flags(*sub, o->flags, FlagsFor::run);
  sub->add_flag("--wait", o->wait, "Follow the task and exit with its exit code");
  sub->add_flag("--json", o->json, "Print JSON");
  return {sub, [&globals, o] { return run_run(globals, *o); }};
}

}  // namespace runscope::cli
