// The config loader, TOML text in: it either returns a Config or throws Error(config) whose
// message starts with the file name (FILE:LINE:COLUMN); nothing else may escape.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.hpp"
#include "config/config.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace runscope;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto c = config::parse_config(text, "fuzz.toml");
    fuzz::check(c.cpuset.min_shared_cores <= CpuSet::kMaxCpus, "min_shared_cores <= kMaxCpus");
    for (const auto& o : c.limits.users) fuzz::check(!o.name.empty() && !o.where.empty(), "user limits named");
    if (c.limits.defaults.cpu_weight) fuzz::check(*c.limits.defaults.cpu_weight >= 1, "cpu_weight >= 1");
    if (c.cpuset.reservable_cores)
      fuzz::check(c.cpuset.reserved_cores.is_subset_of(*c.cpuset.reservable_cores), "reserved inside reservable");
    fuzz::check(!c.daemon.state_dir.empty() && c.daemon.state_dir.is_absolute(), "state_dir absolute");
  } catch (const Error& e) {
    fuzz::check(e.kind() == ErrorKind::config, "config errors are ErrorKind::config", e.what());
    fuzz::check(std::string_view(e.what()).rfind("fuzz.toml:", 0) == 0, "message names the file", e.what());
  }
  return 0;
}
