// Runs the built `runscope` binary (RUNSCOPE_BINARY) as a child, its output captured in files,
// for tests of the CLI's behaviour: exit codes, one-line errors, signals.
#pragma once

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "common/file.hpp"
#include "driver/spawn.hpp"
#include "support/driver_fakes.hpp"

extern char** environ;

namespace runscope::testing {

struct CliResult {
  int code = -1;
  std::string out, err;
};

class RunscopeCli {
 public:
  // Starts `runscope ARGS...` and returns at once.
  driver::Process start(const std::vector<std::string>& args) {
    driver::SpawnSpec spec;
    spec.argv = {RUNSCOPE_BINARY};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = child_env();
    spec.stdout_path = out_path();
    spec.stderr_path = err_path();
    clear_output();
    return spawner_.spawn(spec, nullptr);
  }
  // Ours, plus `exec`'s registry of running tasks (cli/exec_registry.hpp): one per test, not the host's.
  std::vector<std::string> child_env() const {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    env.push_back("RUNSCOPE_EXEC_DIR=" + registry().string());
    return env;
  }
  void clear_output() const {
    std::ofstream(out_path(), std::ios::trunc).close();
    std::ofstream(err_path(), std::ios::trunc).close();
  }
  CliResult run(const std::vector<std::string>& args) {
    auto proc = start(args);
    auto status = proc.reap();
    return {status.shell_code(), out(), err()};
  }
  // Waits (with a deadline) until stdout (or stderr) holds `text`.
  bool wait_for_output(const std::string& text, std::chrono::seconds budget = std::chrono::seconds(20)) {
    return wait_for(text, budget, false);
  }
  bool wait_for_error(const std::string& text, std::chrono::seconds budget = std::chrono::seconds(20)) {
    return wait_for(text, budget, true);
  }
  bool wait_for(const std::string& text, std::chrono::seconds budget, bool on_stderr) {
    Deadline deadline(clock_, budget);
    while ((on_stderr ? err() : out()).find(text) == std::string::npos) {
      if (deadline.expired()) return false;
      clock_.sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }
  // Writes a config file in the temp folder and returns its path.
  std::string write_config(const std::string& text) {
    auto path = dir_.path() / "runscope.toml";
    std::ofstream(path) << text;
    return path.string();
  }
  std::string out() const { return read_file_if_exists(out_path()).value_or(""); }
  std::string err() const { return read_file_if_exists(err_path()).value_or(""); }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path out_path() const { return dir_.path() / "stdout"; }
  std::filesystem::path err_path() const { return dir_.path() / "stderr"; }
  std::filesystem::path registry() const { return dir_.path() / "exec-registry"; }

 private:

  TempDir dir_;
  SteadyClock clock_;
  driver::CloneSpawner spawner_;
};

}  // namespace runscope::testing
