#include "common/cpuset.hpp"

#include <algorithm>
#include <bit>
#include <charconv>

#include "common/error.hpp"

namespace runscope {
namespace {

[[noreturn]] void bad_list(std::string_view list, const std::string& why) {
  throw Error(ErrorKind::invalid_argument,
              "invalid CPU list \"" + std::string(list) + "\": " + why);
}

unsigned parse_cpu(std::string_view list, std::string_view text) {
  if (text.empty()) bad_list(list, "empty CPU number");
  if (text.front() == '-' || text.front() == '+') bad_list(list, "\"" + std::string(text) + "\" is not a CPU number");
  unsigned long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) bad_list(list, "CPU " + std::string(text) + " is too large");
  if (ec != std::errc() || ptr != text.data() + text.size())
    bad_list(list, "\"" + std::string(text) + "\" is not a CPU number");
  if (value >= CpuSet::kMaxCpus)
    bad_list(list, "CPU " + std::string(text) + " is beyond the limit of " +
                       std::to_string(CpuSet::kMaxCpus - 1));
  return static_cast<unsigned>(value);
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

}  // namespace

CpuSet CpuSet::parse(std::string_view list) {
  CpuSet set;
  std::string_view rest = strip(list);
  if (rest.empty()) return set;
  while (true) {
    auto comma = rest.find(',');
    std::string_view item = strip(rest.substr(0, comma));
    if (item.empty()) bad_list(list, "empty item");
    auto dash = item.find('-', 1);
    if (dash == std::string_view::npos) {
      set.add(parse_cpu(list, item));
    } else {
      unsigned first = parse_cpu(list, strip(item.substr(0, dash)));
      unsigned last = parse_cpu(list, strip(item.substr(dash + 1)));
      if (first > last) bad_list(list, "range " + std::string(item) + " runs backwards");
      set |= range(first, last);
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return set;
}

CpuSet CpuSet::from_mask(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() * 8 > kMaxCpus)
    throw Error(ErrorKind::invalid_argument,
                "CPU mask of " + std::to_string(bytes.size()) + " bytes exceeds " +
                    std::to_string(kMaxCpus) + " CPUs");
  CpuSet set;
  for (std::size_t i = 0; i < bytes.size(); ++i)
    for (unsigned bit = 0; bit < 8; ++bit)
      if (bytes[i] & (1u << bit)) set.add(static_cast<unsigned>(i * 8 + bit));
  return set;
}

CpuSet CpuSet::range(unsigned first, unsigned last) {
  CpuSet set;
  for (unsigned cpu = first; cpu <= last; ++cpu) set.add(cpu);
  return set;
}

std::string CpuSet::to_string() const {
  std::string out;
  auto ids = cpus();
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(ids[i]);
    if (j > i) out += '-' + std::to_string(ids[j]);
    i = j + 1;
  }
  return out;
}

std::vector<std::uint8_t> CpuSet::to_mask() const {
  std::vector<std::uint8_t> bytes;
  for (unsigned cpu : cpus()) {
    if (bytes.size() <= cpu / 8) bytes.resize(cpu / 8 + 1, 0);
    bytes[cpu / 8] |= static_cast<std::uint8_t>(1u << (cpu % 8));
  }
  return bytes;
}

void CpuSet::add(unsigned cpu) {
  if (cpu >= kMaxCpus)
    throw Error(ErrorKind::invalid_argument, "CPU " + std::to_string(cpu) + " is beyond the limit");
  if (words_.size() <= cpu / 64) words_.resize(cpu / 64 + 1, 0);
  words_[cpu / 64] |= std::uint64_t{1} << (cpu % 64);
}

void CpuSet::remove(unsigned cpu) {
  if (cpu / 64 < words_.size()) words_[cpu / 64] &= ~(std::uint64_t{1} << (cpu % 64));
  trim();
}

bool CpuSet::contains(unsigned cpu) const {
  return cpu / 64 < words_.size() && (words_[cpu / 64] >> (cpu % 64)) & 1u;
}

bool CpuSet::empty() const { return words_.empty(); }

std::size_t CpuSet::size() const {
  std::size_t n = 0;
  for (auto w : words_) n += static_cast<std::size_t>(std::popcount(w));
  return n;
}

std::vector<unsigned> CpuSet::cpus() const {
  std::vector<unsigned> out;
  for (std::size_t i = 0; i < words_.size(); ++i)
    for (std::uint64_t w = words_[i]; w != 0; w &= w - 1)
      out.push_back(static_cast<unsigned>(i * 64 + std::countr_zero(w)));
  return out;
}

CpuSet CpuSet::operator|(const CpuSet& other) const {
  CpuSet out = *this;
  out |= other;
  return out;
}

CpuSet& CpuSet::operator|=(const CpuSet& other) {
  if (words_.size() < other.words_.size()) words_.resize(other.words_.size(), 0);
  for (std::size_t i = 0; i < other.words_.size(); ++i) words_[i] |= other.words_[i];
  return *this;
}

CpuSet CpuSet::operator&(const CpuSet& other) const {
  CpuSet out;
  out.words_.resize(std::min(words_.size(), other.words_.size()));
  for (std::size_t i = 0; i < out.words_.size(); ++i) out.words_[i] = words_[i] & other.words_[i];
  out.trim();
  return out;
}

CpuSet CpuSet::operator-(const CpuSet& other) const {
  CpuSet out = *this;
  out -= other;
  return out;
}

CpuSet& CpuSet::operator-=(const CpuSet& other) {
  for (std::size_t i = 0; i < std::min(words_.size(), other.words_.size()); ++i)
    words_[i] &= ~other.words_[i];
  trim();
  return *this;
}

bool CpuSet::is_subset_of(const CpuSet& other) const { return (*this - other).empty(); }
bool CpuSet::intersects(const CpuSet& other) const { return !(*this & other).empty(); }
bool CpuSet::operator==(const CpuSet& other) const { return words_ == other.words_; }

void CpuSet::trim() {
  while (!words_.empty() && words_.back() == 0) words_.pop_back();
}

}  // namespace runscope
