// A fake SystemdManager for the systemd backend's unit tests: it records every call, throws the
// errors queued for StartTransientUnit first, then "makes" each scope as a folder in a fake
// cgroup2 tree and writes the pid's /proc/PID/cgroup as systemd would.
#pragma once

#include <sys/types.h>

#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/file.hpp"
#include "support/fake_cgroup_tree.hpp"
#include "systemd/manager.hpp"
#include "systemd/properties.hpp"

namespace runscope::testing {

using systemd::BusError;
using systemd::find_property;
using systemd::PropertyValue;
using systemd::SystemdManager;
using systemd::UnitProperty;
using systemd::UnitStatus;

class FakeManager final : public SystemdManager {
 public:
  FakeManager(runscope::testing::FakeCgroupTree& tree, std::filesystem::path mount, std::filesystem::path proc)
      : tree_(tree), mount_(std::move(mount)), proc_(std::move(proc)) {}

  void start_transient_unit(const std::string& name, const std::vector<UnitProperty>& props) override {
    starts.push_back({name, props});
    if (!start_errors.empty()) {
      auto e = start_errors.front();
      start_errors.pop_front();
      throw e;
    }
    make(name, props, pid_for_pidfd, misplace);
    active.insert(name);
  }
  // The scope's folder in the fake tree and /proc/PID/cgroup as systemd would leave them.
  void make(const std::string& name, const std::vector<UnitProperty>& props, pid_t pidfd_pid, bool elsewhere) {
    const auto slice = std::get<std::string>(find_property(props, "Slice")->value);
    const auto cg = slice_cgroup(slice) + "/" + name;
    tree_.make_cgroup(mount_ / std::filesystem::path(cg).relative_path());
    cgroups[name] = cg;
    pid_t pid = 0;
    if (auto* p = find_property(props, "PIDs")) pid = static_cast<pid_t>(std::get<std::vector<std::uint32_t>>(p->value).at(0));
    if (find_property(props, "PIDFDs")) pid = pidfd_pid;
    std::filesystem::create_directories(proc_ / std::to_string(pid));
    write_file_atomic(proc_ / std::to_string(pid) / "cgroup", "0::" + (elsewhere ? std::string("/elsewhere") : cg) + "\n");
  }
  void stop_unit(const std::string& name) override { stops.push_back(name); }
  void send_stop_unit(const std::string& name) override { sent_stops.push_back(name); }
  void reset_failed_unit(const std::string& name) override { resets.push_back(name); }
  void set_unit_properties(const std::string& name, bool runtime, const std::vector<UnitProperty>& props) override {
    set_calls.push_back({name, runtime, props});
  }
  PropertyValue get_unit_property(const std::string& name, const std::string&, const std::string& property) override {
    if (property == "Slice") return slice_of.count(name) ? slice_of.at(name) : existing_slice;
    throw BusError(systemd::kUnknownProperty, property);
  }
  std::string control_group(const std::string& name) override {
    ++control_group_calls;
    if (name.ends_with(".slice")) return slice_cgroup(name);
    auto it = cgroups.find(name);
    return it != cgroups.end() ? it->second : existing_cgroup;
  }
  // Only the supervisors' slice is nested here: the tests of the task slices predate it.
  static std::string slice_cgroup(const std::string& slice) {
    return slice.ends_with("-supervisors.slice") ? "/runscope.slice/" + slice : "/" + slice;
  }
  std::vector<UnitStatus> list_units_by_patterns(const std::vector<std::string>&,
                                                 const std::vector<std::string>& patterns) override {
    if (!listed.empty()) return listed;
    std::vector<UnitStatus> out;
    if (!existing_state.empty()) out.push_back({patterns.at(0), "loaded", existing_state, "dead"});
    return out;
  }
  std::optional<UnitStatus> unit_status(const std::string& name) override {
    if (active.count(name)) return UnitStatus{name, "loaded", "active", "running"};
    if (existing_state.empty()) return std::nullopt;
    return UnitStatus{name, "loaded", existing_state, "dead"};
  }
  std::string version() override { return "252"; }

  struct Start {
    std::string name;
    std::vector<UnitProperty> props;
  };
  struct SetCall {
    std::string name;
    bool runtime;
    std::vector<UnitProperty> props;
  };
  std::deque<BusError> start_errors;
  std::vector<Start> starts;
  std::vector<std::string> stops, resets;
  std::vector<std::string> sent_stops;  // send_stop_unit: not waited for
  std::vector<SetCall> set_calls;
  std::map<std::string, std::string> cgroups;
  std::string existing_state;  // of a unit already holding the name; empty: none
  std::string existing_slice = "runscope.slice";
  std::string existing_cgroup;  // its ControlGroup; empty: none
  std::map<std::string, std::string> slice_of;  // per unit, over existing_slice
  std::vector<UnitStatus> listed;               // what list_units_by_patterns answers, when set
  pid_t pid_for_pidfd = 0;
  int control_group_calls = 0;
  bool misplace = false;
  std::set<std::string> active;  // units started here (unit_status answers "active" for them)

 private:
  runscope::testing::FakeCgroupTree& tree_;
  std::filesystem::path mount_;
  std::filesystem::path proc_;
};

}  // namespace runscope::testing
