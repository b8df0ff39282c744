#include "common/units.hpp"

#include <array>
#include <charconv>
#include <utility>

#include "common/error.hpp"

namespace runscope {
namespace {

[[noreturn]] void bad(std::string_view field, std::string_view text, const char* expected) {
  throw Error(ErrorKind::invalid_argument,
              std::string(field) + ": \"" + std::string(text) + "\" is not " + expected);
}

// Splits "250ms" into 250 and "ms"; fails without leading digits.
bool split_number(std::string_view text, std::uint64_t& number, std::string_view& suffix) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || ptr == text.data()) return false;
  suffix = text.substr(static_cast<std::size_t>(ptr - text.data()));
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

}  // namespace

Duration parse_duration(std::string_view text, std::string_view field) {
  constexpr const char* expected = "a duration like 5s, 250ms, 2m or 1h";
  std::uint64_t n = 0;
  std::string_view suffix;
  if (!split_number(text, n, suffix)) bad(field, text, expected);
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 6> kUnits{{
      {"ns", 1}, {"us", 1'000}, {"ms", 1'000'000}, {"s", 1'000'000'000},
      {"m", 60'000'000'000}, {"h", 3'600'000'000'000}}};
  if (suffix.empty()) {
    if (n == 0) return Duration::zero();
    bad(field, text, "a duration with a unit (ns, us, ms, s, m, h)");
  }
  for (auto [name, scale] : kUnits) {
    if (suffix != name) continue;
    if (n > static_cast<std::uint64_t>(Duration::max().count()) / scale) bad(field, text, "a duration that fits");
    return Duration(static_cast<Duration::rep>(n * scale));
  }
  bad(field, text, expected);
}

std::string format_duration(Duration d) {
  auto ns = d.count();
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

std::uint64_t parse_size(std::string_view text, std::string_view field) {
  constexpr const char* expected = "a size like 512M, 2G or 1048576";
  std::uint64_t n = 0;
  std::string_view suffix;
  if (!split_number(text, n, suffix)) bad(field, text, expected);
  unsigned shift = 0;
  if (suffix.empty() || iequals(suffix, "B")) shift = 0;
  else if (iequals(suffix, "K") || iequals(suffix, "KiB")) shift = 10;
  else if (iequals(suffix, "M") || iequals(suffix, "MiB")) shift = 20;
  else if (iequals(suffix, "G") || iequals(suffix, "GiB")) shift = 30;
  else if (iequals(suffix, "T") || iequals(suffix, "TiB")) shift = 40;
  else bad(field, text, expected);
  if (shift > 0 && n > (UINT64_MAX >> shift)) bad(field, text, "a size that fits in 64 bits");
  return n << shift;
}

std::string format_size(std::uint64_t bytes) {
  static constexpr std::array<std::pair<unsigned, char>, 4> kUnits{{{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}}};
  for (auto [shift, letter] : kUnits)
    if (bytes != 0 && bytes % (std::uint64_t{1} << shift) == 0) return std::to_string(bytes >> shift) + letter;
  return std::to_string(bytes);
}

}  // namespace runscope
