// The driver catalog: each driver declares the schema of its spec's `config`, validates it at
// submission (errors name the field, "config.args[2]") and turns a spec into what the spawner
// runs. Drivers are stateless values: a lookup made only to validate holds no thread or fd.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "driver/spawn.hpp"
#include "driver/task_spec.hpp"

namespace runscope::driver {

// Reports a bad field: (path, what is wrong); never returns.
using FieldError = std::function<void(const std::string& path, const std::string& what)>;

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string name() const = 0;
  // A JSON-schema-like description of `config`, for `fingerprint` and documentation.
  virtual nlohmann::json config_schema() const = 0;
  virtual void validate(const TaskSpec& spec, const FieldError& fail) const = 0;
  // argv, env, cwd from a validated spec; `env` is the base environment the daemon adds to.
  virtual SpawnSpec to_spawn(const TaskSpec& spec, const std::vector<std::string>& base_env) const = 0;
};

class Catalog {
 public:
  void add(std::unique_ptr<Driver> driver);
  const Driver& get(const std::string& name) const;  // Error(invalid_argument) "driver: unknown ..."
  std::vector<std::string> names() const;
  // Checks `spec.driver` exists and its config is valid; `fail` is called for the first problem.
  void validate(const TaskSpec& spec, const FieldError& fail) const;
  void validate(const TaskSpec& spec) const;  // throws Error(invalid_argument)

 private:
  std::vector<std::unique_ptr<Driver>> drivers_;
};

// raw_exec: {"command": "/bin/sh" (required), "args": ["-c", "..."], "cwd": "/abs/dir"}
std::unique_ptr<Driver> make_raw_exec_driver();

// The built-in catalog (raw_exec), made once.
const Catalog& default_catalog();

}  // namespace runscope::driver
