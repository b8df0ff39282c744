#include "common/file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace runscope {
namespace {

[[noreturn]] void fail(const char* verb, const std::filesystem::path& path, int err) {
  std::string what = std::string(verb) + " " + path.string();
  if (err == ENOENT) throw Error(ErrorKind::not_found, what + ": no such file or directory", err);
  throw_system_error(what, err);
}

void write_all(int fd, std::string_view content, const std::filesystem::path& path) {
  while (!content.empty()) {
    ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", path, errno);
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::optional<std::string> read_file_if_exists(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    fail("open", path, errno);
  }
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      // A cgroup removed under us reads as ENODEV: treat like a vanished file.
      if (errno == ENODEV) return std::nullopt;
      fail("read", path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string read_file(const std::filesystem::path& path) {
  auto content = read_file_if_exists(path);
  if (!content) fail("read", path, ENOENT);
  return *content;
}

void write_file(const std::filesystem::path& path, std::string_view content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) fail("open", path, errno);
  write_all(fd.get(), content, path);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content, unsigned mode,
                       Durability durability) {
  static std::atomic<std::uint64_t> serial{0};
  auto tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(serial++);  // threads may write at once
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) fail("create", tmp, errno);
    try {
      write_all(fd.get(), content, tmp);
      if (durability == Durability::now && ::fsync(fd.get()) != 0) fail("fsync", tmp, errno);
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("rename to", path, err);
  }
  if (durability == Durability::deferred) return;
  auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());
}

std::string trim(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace runscope
