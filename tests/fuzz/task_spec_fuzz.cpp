// The task-spec parser, JSON and TOML (the first byte picks which). Bad input throws
// Error(invalid_argument); a spec that parses survives the trip through its own JSON unchanged,
// and everything the daemon later relies on (names, argv, env) is within the documented limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.hpp"
#include "common/task_id.hpp"
#include "driver/task_spec.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace runscope;

void check_spec(const driver::TaskSpec& spec) {
  // A name the parser accepted must make a TaskId (no throw) when given an alloc.
  TaskId id(spec.alloc.value_or("a"), spec.task);
  fuzz::check(id.cgroup_name().find('/') == std::string::npos, "cgroup name holds no '/'");
  std::size_t env_bytes = 0;
  for (const auto& [k, v] : spec.env) env_bytes += k.size() + v.size() + 2;
  fuzz::check(env_bytes <= driver::kMaxEnvBytes, "env within kMaxEnvBytes");
  auto again = driver::parse_task_spec_json(driver::to_json(spec).dump());
  fuzz::check(driver::to_json(again) == driver::to_json(spec), "spec survives its own JSON",
              driver::to_json(spec).dump());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  bool toml = data[0] & 1;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    auto spec = toml ? driver::parse_task_spec_toml_text(text, "fuzz.toml") : driver::parse_task_spec_json(text);
    check_spec(spec);
  } catch (const Error& e) {
    fuzz::check(e.kind() == ErrorKind::invalid_argument, "spec errors are invalid_argument", e.what());
  }
  return 0;
}
