#include "common/task_id.hpp"

#include <sys/random.h>

#include <array>
#include <cstdio>

#include "common/error.hpp"

namespace runscope {
namespace {

constexpr std::size_t kMaxUnitName = 255;

bool is_plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
         c == '_' || c == '.' || c == '-';
}

std::string in_quotes(std::string_view value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c >= 0x80) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += len;
  }
  return true;
}

[[noreturn]] void reject(std::string_view field, std::string_view value, const char* why) {
  throw Error(ErrorKind::invalid_argument,
              std::string(field) + " " + in_quotes(value) + " is not allowed: " + why);
}

}  // namespace

std::string escape_name(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    auto c = static_cast<unsigned char>(raw[i]);
    if (is_plain(c) && !(i == 0 && c == '.')) {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

void validate_name_part(std::string_view field, std::string_view value) {
  if (value.empty()) reject(field, value, "it is empty");
  if (value == "." || value == "..") reject(field, value, "it is a path component");
  for (unsigned char c : value) {
    if (c == '\0') reject(field, value, "it contains a NUL byte");
    if (c == '/') reject(field, value, "it contains '/'");
    if (c < 0x20 || c == 0x7f) reject(field, value, "it contains a control character");
  }
  if (!valid_utf8(value)) reject(field, value, "it is not valid UTF-8");
  if (escape_name(value).size() > kMaxUnitName) reject(field, value, "it is longer than 255 bytes once escaped");
}

TaskId::TaskId(std::string alloc, std::string task) : alloc_(std::move(alloc)), task_(std::move(task)) {
  validate_name_part("alloc ID", alloc_);
  validate_name_part("task name", task_);
  if (unit_name().size() > kMaxUnitName)
    throw Error(ErrorKind::invalid_argument,
                "alloc ID and task name together are too long: unit name " + in_quotes(unit_name()) +
                    " exceeds 255 bytes");
}

std::string TaskId::unit_name() const { return cgroup_name() + ".scope"; }
std::string TaskId::cgroup_name() const { return escape_name(alloc_) + "-" + escape_name(task_); }
std::string TaskId::display() const { return alloc_ + "/" + task_; }

std::string random_uuid() {
  std::array<unsigned char, 16> b{};
  if (::getrandom(b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) throw_system_error("getrandom");
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

}  // namespace runscope
