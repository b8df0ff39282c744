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
    for (char** e = environ; *e != nullptr; ++e) spec.env.emplace_back(*e);
    spec.stdout_path = out_path();
    spec.stderr_path = err_path();
    std::ofstream(out_path(), std::ios::trunc).close();
    std::ofstream(err_path(), std::ios::trunc).close();
    return spawner_.spawn(spec, nullptr);
  }
  CliResult run(const std::vector<std::string>& args) {
    auto proc = start(args);
    auto status = proc.reap();
    return {status.shell_code(), out(), err()};
  }
  // Waits (with a deadline) until stdout holds `text`.
  bool wait_for_output(const std::string& text, std::chrono::seconds budget = std::chrono::seconds(20)) {
    Deadline deadline(clock_, budget);
    while (out().find(text) == std::string::npos) {
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

 private:
  std::filesystem::path out_path() const { return dir_.path() / "stdout"; }
  std::filesystem::path err_path() const { return dir_.path() / "stderr"; }

  TempDir dir_;
  SteadyClock clock_;
  driver::CloneSpawner spawner_;
};

}  // namespace runscope::testing
