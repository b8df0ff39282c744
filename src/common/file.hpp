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
// Write to a temp file beside `path`, fsync, rename over it, fsync the directory.
void write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode = 0644);
std::string trim(std::string_view s);

}  // namespace runscope
