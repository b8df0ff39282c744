// Who a task runs as, resolved from names BEFORE any fork: NSS lookups are not
// async-signal-safe, so the child only ever sees numbers.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runscope::driver {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// `user` is a name or a numeric uid; `group` (a name or gid) overrides the user's primary group.
// The supplementary groups are the user's (getgrouplist). Throws Error(not_found) naming the
// user or group that does not exist.
Credentials resolve_credentials(std::string_view user, std::optional<std::string_view> group = std::nullopt);

// "USER" or "USER:GROUP", as `--user` and a task spec's "user" are written.
Credentials resolve_user(std::string_view user_and_group);

}  // namespace runscope::driver
