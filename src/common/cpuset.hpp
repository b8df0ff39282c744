// A set of CPU ids, as the kernel prints it ("0-3,8,10-11") and as systemd's AllowedCPUs
// carries it (a little-endian byte mask: CPU i is bit i%8 of byte i/8).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace runscope {

class CpuSet {
 public:
  // The kernel's NR_CPUS ceiling; larger ids are rejected as input errors.
  static constexpr unsigned kMaxCpus = 8192;

  CpuSet() = default;
  static CpuSet parse(std::string_view list);  // throws Error(invalid_argument) naming the text
  static CpuSet from_mask(const std::vector<std::uint8_t>& bytes);
  static CpuSet range(unsigned first, unsigned last);  // inclusive

  std::string to_string() const;               // canonical list syntax; "" when empty
  std::vector<std::uint8_t> to_mask() const;   // shortest mask; empty set gives no bytes

  void add(unsigned cpu);
  void remove(unsigned cpu);
  bool contains(unsigned cpu) const;
  bool empty() const;
  std::size_t size() const;
  std::vector<unsigned> cpus() const;  // ascending

  CpuSet operator|(const CpuSet& other) const;  // union
  CpuSet operator&(const CpuSet& other) const;  // intersection
  CpuSet operator-(const CpuSet& other) const;  // difference
  CpuSet& operator|=(const CpuSet& other);
  CpuSet& operator-=(const CpuSet& other);
  bool is_subset_of(const CpuSet& other) const;
  bool intersects(const CpuSet& other) const;
  bool operator==(const CpuSet& other) const;

 private:
  void trim();
  std::vector<std::uint64_t> words_;  // no trailing zero words
};

}  // namespace runscope
