// Issue 12 point 6's table, shared by the host (cgroupfs) and contained-systemd layers: a real
// runscoped on a system-like private bus with the project's policy (dbus/org.runscope1.conf),
// callers that are root, the task's owner, another member and an outsider, each a child that
// became that user and talks to the daemon with the real client.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "driver/credentials.hpp"

namespace runscope::testing {

std::string system_like_bus_config();  // deny method calls unless a policy allows (system.conf)

// Two throwaway members of group runscope (the group too, if this host has none); removed after.
class Members {
 public:
  Members();
  ~Members();
  Members(const Members&) = delete;
  Members& operator=(const Members&) = delete;
  const std::string& owner() const { return names_.at(0); }
  const std::string& other() const { return names_.at(1); }

 private:
  std::vector<std::string> names_;
  bool made_group_ = false;
};

// Runs `body` in a child that has become `who` and returns what it returned: "ok" (or
// "ok:DETAIL"), "bus-denied" (the bus refused it), or the daemon's error kind ("not found",
// "conflict:MESSAGE", "quota", ...).
std::string as(const driver::Credentials& who, const std::function<std::string()>& body);
std::string shell_spec_json(const std::string& alloc, const std::string& task, const std::string& script);

struct Callers {
  driver::Credentials root, owner, other, outsider;
};
Callers callers_of(const Members& members);

// Every API method x {root, owner, other member, outsider} on the owner's task own/t (started
// and destroyed here), with the answer each must get (EXPECTs).
void expect_the_api_table(const std::string& bus, const Callers& who);
// Only root and the owner hear of a task's changes (`dir`: where the watchers say they are ready).
void expect_signals_only_to_root_and_owner(const std::string& bus, const Callers& who, const std::filesystem::path& dir);

}  // namespace runscope::testing
