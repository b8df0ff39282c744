#include "driver/credentials.hpp"

#include <grp.h>
#include <pwd.h>

#include <charconv>
#include <string>

#include "common/error.hpp"

namespace runscope::driver {
namespace {

constexpr std::size_t kNssBuffer = 16384;

std::optional<unsigned long> parse_id(std::string_view text) {
  unsigned long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

gid_t resolve_group(std::string_view group) {
  if (auto id = parse_id(group)) return static_cast<gid_t>(*id);
  std::string name(group), buffer(kNssBuffer, '\0');
  struct group entry{};
  struct group* found = nullptr;
  int err = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (found == nullptr) {
    throw Error(ErrorKind::not_found, "group '" + name + "' does not exist", err);
  }
  return found->gr_gid;
}

}  // namespace

Credentials resolve_credentials(std::string_view user, std::optional<std::string_view> group) {
  std::string name(user), buffer(kNssBuffer, '\0');
  struct passwd entry{};
  struct passwd* found = nullptr;
  int err = 0;
  if (auto id = parse_id(user)) {
    err = ::getpwuid_r(static_cast<uid_t>(*id), &entry, buffer.data(), buffer.size(), &found);
  } else {
    err = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  }
  Credentials creds;
  if (found == nullptr) {
    auto id = parse_id(user);
    if (!id) throw Error(ErrorKind::not_found, "user '" + name + "' does not exist", err);
    // A bare uid with no passwd entry is allowed, as with `setpriv`: no groups but its own.
    creds.uid = static_cast<uid_t>(*id);
    creds.gid = group ? resolve_group(*group) : static_cast<gid_t>(*id);
    creds.groups = {creds.gid};
    return creds;
  }
  creds.uid = found->pw_uid;
  creds.gid = group ? resolve_group(*group) : found->pw_gid;
  int count = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  while (::getgrouplist(found->pw_name, creds.gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count) * 2);
    count = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<std::size_t>(count));
  creds.groups = std::move(groups);
  return creds;
}

Credentials resolve_user(std::string_view user_and_group) {
  const auto colon = user_and_group.find(':');
  if (colon == std::string_view::npos) return resolve_credentials(user_and_group);
  return resolve_credentials(user_and_group.substr(0, colon), user_and_group.substr(colon + 1));
}

}  // namespace runscope::driver
