// Name escaping and TaskId validation. The first byte splits the rest into alloc and task.
// Properties: escape_name emits only [A-Za-z0-9:_.-\] and never a leading '.', and it is
// reversible (so two names never share a cgroup or unit); an accepted TaskId's unit name fits
// systemd's 255 bytes and holds no '/'; a refused one throws Error(invalid_argument).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/task_id.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace runscope;

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The inverse of escape_name, refusing anything escape_name could not have produced.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    fuzz::check(i + 3 < s.size() && s[i + 1] == 'x', "escape is \\xNN", std::string(s));
    int hi = hex(s[i + 2]), lo = hex(s[i + 3]);
    fuzz::check(hi >= 0 && lo >= 0, "escape digits are lower-case hex", std::string(s));
    out += static_cast<char>(hi * 16 + lo);
    i += 3;
  }
  return out;
}

void check_escape(std::string_view raw) {
  std::string e = escape_name(raw);
  for (std::size_t i = 0; i < e.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(e[i]);
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
                 c == '_' || c == '.' || c == '-' || c == '\\';
    fuzz::check(plain, "escaped name holds only safe bytes", e);
  }
  fuzz::check(e.empty() || e[0] != '.', "escaped name does not start with '.'", e);
  fuzz::check(unescape(e) == raw, "escape_name is reversible", e);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t cut = data[0] % (rest.size() + 1);
  std::string alloc(rest.substr(0, cut)), task(rest.substr(cut));
  check_escape(alloc);
  check_escape(task);
  try {
    TaskId id(alloc, task);
    auto unit = id.unit_name();
    fuzz::check(unit.size() <= 255, "unit name fits 255 bytes", unit);
    fuzz::check(unit.find('/') == std::string::npos, "unit name holds no '/'", unit);
    fuzz::check(id.cgroup_name() != "." && id.cgroup_name() != "..", "cgroup name is not . or ..");
  } catch (const Error& e) {
    fuzz::check(e.kind() == ErrorKind::invalid_argument, "name errors are invalid_argument", e.what());
  }
  return 0;
}
