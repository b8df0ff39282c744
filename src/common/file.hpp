// Small file helpers whose errors name the path. cgroupfs and /proc readers build on these.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace runscope {

std::string read_file(const std::filesystem::path& path);                 // throws Error(system|not_found)
std::optional<std::string> read_file_if_exists(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, std::string_view content);  // O_WRONLY|O_TRUNC, no create
// now: the file and its directory entry are on disk when it returns. deferred: the rename is
// atomic but the caller makes it durable later (one syncfs for many files: daemon/state_writer).
enum class Durability { now, deferred };
// Write to a temp file beside `path` (unique per call), fsync, rename over it, fsync the directory.
void write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode = 0644,
                       Durability durability = Durability::now);
std::string trim(std::string_view s);

}  // namespace runscope
