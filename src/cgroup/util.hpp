// Small pieces shared by the v1 and v2 cgroupfs code: parsing control file contents, signalling
// a list of pids, and polling with a deadline on an injected clock.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/clock.hpp"

namespace runscope::cgroup {

// "12\n34\n" (cgroup.procs) -> {12, 34}. Ignores blank lines; throws Error(system) on garbage.
std::vector<pid_t> cg_parse_pids(std::string_view text);

// "key value\n" lines (cgroup.events, cpu.stat, memory.events, ...) -> map. Unparsable lines are
// skipped: kernels add keys over time.
std::map<std::string, std::uint64_t> cg_parse_keyed(std::string_view text);

// A single number, or nullopt for "max".
std::optional<std::uint64_t> cg_parse_limit(std::string_view text);

// SIGKILLs each pid; a pid already gone is not an error. Returns how many were signalled.
std::size_t cg_kill_pids(const std::vector<pid_t>& pids, int sig);

// Calls `done` until it returns true or the deadline passes, sleeping on the deadline's clock
// with a backoff from 1 ms to 20 ms. Returns the last answer.
bool cg_poll_until(const Deadline& deadline, const std::function<bool()>& done);

// The cpu.shares systemd derives from a cpu weight: weight * 1024 / 100, clamped to 2..262144.
// Throws Error(invalid_argument) for a weight outside kMinCpuWeight..kMaxCpuWeight.
std::uint64_t cg_weight_to_shares(std::uint64_t weight);

// The v1 freezer recipe (runc's): write FROZEN and read the state back until it says FROZEN, up
// to 1000 attempts within the deadline, writing THAWED before every 50th as a freezer can stay
// FREEZING. Returns whether it froze. `write_state`/`read_state` act on freezer.state.
bool cg_freezer_freeze(const std::function<void(const char*)>& write_state,
                       const std::function<std::string()>& read_state, const Deadline& deadline);

// Throws Error(invalid_argument) naming the parent when it has a ".." component (it could
// otherwise reach outside the hierarchy).
void cg_check_parent(const std::filesystem::path& parent);

// mkdir -p below `base` (which must exist) with the kernel seam; returns the folders it made,
// outermost first. Throws Error(system) naming the path; on failure removes what it made.
struct CgroupFsOps;
std::vector<std::filesystem::path> cg_make_path(const CgroupFsOps& ops, const std::filesystem::path& base,
                                                const std::filesystem::path& relative);

}  // namespace runscope::cgroup
