// The CPU list parser and the AllowedCPUs mask. The first byte picks the input's reading: a list
// ("0-3,8") or raw mask bytes. Whatever is accepted survives parse(print(x)) == x and
// from_mask(to_mask(x)) == x; the mask is the shortest one (no trailing zero byte).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/cpuset.hpp"
#include "common/error.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace runscope;

void check_round_trips(const CpuSet& set) {
  auto text = set.to_string();
  fuzz::check(CpuSet::parse(text) == set, "parse(print(x)) == x", text);
  auto mask = set.to_mask();
  fuzz::check(mask.empty() || mask.back() != 0, "mask is the shortest", text);
  fuzz::check(CpuSet::from_mask(mask) == set, "from_mask(to_mask(x)) == x", text);
  fuzz::check(set.size() == set.cpus().size(), "size() counts cpus()", text);
  for (unsigned cpu : set.cpus()) fuzz::check(cpu < CpuSet::kMaxCpus && set.contains(cpu), "cpus() are members", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  try {
    CpuSet set;
    if (data[0] & 1) {
      set = CpuSet::from_mask(std::vector<std::uint8_t>(data + 1, data + size));
    } else {
      set = CpuSet::parse(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
    }
    check_round_trips(set);
  } catch (const Error& e) {
    fuzz::check(e.kind() == ErrorKind::invalid_argument, "cpuset errors are invalid_argument", e.what());
  }
  return 0;
}
