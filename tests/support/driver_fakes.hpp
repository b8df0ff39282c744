// Test doubles for the driver's seams: a TaskCgroup and Backend that record what the runner
// asks of them (no cgroupfs involved), and small helpers for tests that start real processes.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/error.hpp"

namespace runscope::testing {

struct FakeCgroupState {
  std::vector<pid_t> placed;
  int destroyed = 0;
  int kill_alls = 0;
  std::function<void(pid_t)> on_place;  // may throw, to simulate a failed placement
  // Files handed to the child as its "tasks" files (the v1 self-join); empty: held and placed.
  std::vector<std::string> join_files;
  int join_flags = O_WRONLY;  // O_RDONLY makes the child's write fail
  std::filesystem::path folder;  // folders(): a plain folder whose cgroup.procs the test writes
  // A supervisor home (cgroup::SupervisorHome) when set: the files the shim writes "0" to before
  // exec, and the shims it was asked to take in (move_in).
  bool with_home = false;
  std::vector<std::string> home_files;
  int home_flags = O_WRONLY;
  std::vector<pid_t> home_moved;
  cgroup::Stats stats;        // what stats() reports
};

class FakeSupervisorHome final : public cgroup::SupervisorHome {
 public:
  explicit FakeSupervisorHome(FakeCgroupState& state) : state_(state) {}
  std::vector<int> join_fds() const override {
    if (fds_.empty()) {
      for (const auto& f : state_.home_files) {
        fds_.emplace_back(::open(f.c_str(), state_.home_flags | O_CLOEXEC | O_CREAT, 0644));
        if (!fds_.back()) throw_system_error("open " + f);
      }
    }
    std::vector<int> out;
    for (const auto& fd : fds_) out.push_back(fd.get());
    return out;
  }
  void move_in(pid_t shim) override { state_.home_moved.push_back(shim); }
  std::string location() const override { return "fake-home"; }

 private:
  FakeCgroupState& state_;
  mutable std::vector<UniqueFd> fds_;
};

class FakeTaskCgroup final : public cgroup::TaskCgroup {
 public:
  explicit FakeTaskCgroup(std::shared_ptr<FakeCgroupState> state) : state_(std::move(state)) {}
  std::vector<UniqueFd> open_join_files() const override {
    std::vector<UniqueFd> fds;
    for (const auto& f : state_->join_files) {
      fds.emplace_back(::open(f.c_str(), state_->join_flags | O_CLOEXEC | O_CREAT, 0644));
      if (!fds.back()) throw_system_error("open " + f);
    }
    return fds;
  }
  void place(pid_t pid) override {
    state_->placed.push_back(pid);
    if (state_->on_place) state_->on_place(pid);
  }
  std::vector<pid_t> pids() const override { return {}; }
  bool populated() const override { return false; }
  void kill_all(const Deadline&, cgroup::KillMethod) override { ++state_->kill_alls; }
  void destroy(const Deadline&) override { ++state_->destroyed; }
  void set_cpuset(const CpuSet&) override {}
  cgroup::Stats stats() const override { return state_->stats; }
  std::string location() const override { return "fake"; }
  cgroup::Folders folders() const override { return cgroup::Folders{state_->folder, {}}; }
  cgroup::SupervisorHome* supervisor_home() const override { return state_->with_home ? &home_ : nullptr; }

 private:
  std::shared_ptr<FakeCgroupState> state_;
  mutable FakeSupervisorHome home_{*state_};
};

class FakeBackend final : public cgroup::Backend {
 public:
  std::string manager_name() const override { return "fake"; }
  std::unique_ptr<cgroup::TaskCgroup> create(const TaskId& id, const cgroup::Limits& limits) override {
    std::lock_guard lock(create_mutex_);  // the manager's pool threads start tasks concurrently
    ids.push_back(id);
    this->limits.push_back(limits);
    state = std::make_shared<FakeCgroupState>();
    state->stats = stats;
    if (prepare) prepare(*state);
    if (!folder_root.empty()) {
      state->folder = folder_root / id.cgroup_name();
      std::filesystem::create_directories(state->folder);
      std::ofstream(state->folder / "cgroup.procs").flush();
    }
    return std::make_unique<FakeTaskCgroup>(state);
  }

  void remove_stray_supervisors(const std::set<std::string>& running) override { stray_calls.push_back(running); }

  std::filesystem::path folder_root;  // when set, each cgroup gets a folder there (see FakeCgroupState)
  std::function<void(FakeCgroupState&)> prepare;  // when set, called on each new cgroup's state
  std::vector<TaskId> ids;
  std::vector<cgroup::Limits> limits;
  cgroup::Stats stats;  // what each new cgroup's stats() reports (set before the start: no race)
  std::shared_ptr<FakeCgroupState> state;  // of the last cgroup made
  std::vector<std::set<std::string>> stray_calls;  // remove_stray_supervisors(running), in order

 private:
  std::mutex create_mutex_;
};

// A temp folder removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/runscope-test-" + std::to_string(::getpid()) + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw_system_error("mkdtemp");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace runscope::testing
