// A command to run inside a running task (runscoped's EnterTask, `runscope enter`, the Nomad
// plugin's exec): the JSON document EnterTask takes as spec_json.
//
// {
//   "command": "sh",            required: looked up in the task's PATH as the entered user
//   "args": ["-c", "id"],       optional
//   "env": {"K": "V"},          optional: over the task's own environment
//   "user": "www-data",         optional: the task's user by default; only root may name another
//   "cwd": "/srv",              optional: the task's working directory by default
//   "tty": false                optional: the three fds are one terminal, made the controlling one
// }
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runscope::driver {

struct EnterSpec {
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  bool tty = false;
  std::optional<std::string> user;
  std::optional<std::string> cwd;
};

// Ample for a command line and its variables, and small enough to parse on the bus thread (well
// under a millisecond): the spec is refused unparsed beyond this.
inline constexpr std::size_t kMaxEnterSpecBytes = 64u << 10;

std::string to_json_text(const EnterSpec& spec);
// Throws Error(invalid_argument) naming the field and the value at fault.
EnterSpec parse_enter_spec_json(std::string_view json);

}  // namespace runscope::driver
