// Human quantities for config and CLI: durations ("5s", "250ms") and sizes ("512M", "2G").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace runscope {

using Duration = std::chrono::nanoseconds;

// Accepts an integer followed by ns, us, ms, s, m or h ("0" alone is allowed). Throws
// Error(invalid_argument) naming `field` and the text.
Duration parse_duration(std::string_view text, std::string_view field = "duration");
std::string format_duration(Duration d);

// Accepts an integer with an optional binary suffix: B, K/KiB, M/MiB, G/GiB, T/TiB (case-insensitive
// K/M/G/T). Throws Error(invalid_argument) naming `field` and the text, also on overflow.
std::uint64_t parse_size(std::string_view text, std::string_view field = "size");
std::string format_size(std::uint64_t bytes);

// The cpu weight range (cgroup v2's cpu.weight; v1 maps it to cpu.shares). The one place it is
// written down: the spec validator, the [limits] reader, the backends and the CLI all refer to it.
inline constexpr std::uint64_t kMinCpuWeight = 1;
inline constexpr std::uint64_t kMaxCpuWeight = 10000;

}  // namespace runscope
