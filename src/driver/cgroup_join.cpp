#include "driver/cgroup_join.hpp"

#include <fcntl.h>

#include <algorithm>

#include "cgroup/host.hpp"
#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::driver {
namespace {

namespace fs = std::filesystem;

constexpr const char* kV1Join = "tasks";  // a thread moving itself: no global threadgroup lock
constexpr const char* kV2Join = "cgroup.procs";

}  // namespace

std::vector<std::string> cgroup_join_paths(pid_t pid, const fs::path& proc_root) {
  const auto theirs = cgroup::parse_proc_cgroup(read_file(proc_root / std::to_string(pid) / "cgroup"));
  const auto ours = cgroup::parse_proc_cgroup(read_file(proc_root / "self" / "cgroup"));
  // Only the mounts we can see: inside a contained systemd the host's hierarchies are still listed.
  const auto mounts = cgroup::drop_shadowed_mounts(read_file(proc_root / "self" / "mountinfo"));
  const auto layout = cgroup::parse_mountinfo(mounts);
  std::vector<std::string> out;
  for (const auto& [hierarchy, path] : theirs) {
    auto mine = ours.find(hierarchy);
    if (mine != ours.end() && mine->second == path) continue;
    fs::path file;
    if (hierarchy == cgroup::kUnifiedKey && !layout.unified_mount.empty()) {
      file = layout.unified_mount / fs::path(path).relative_path() / kV2Join;
    } else if (auto mount = layout.v1_mounts.find(hierarchy); mount != layout.v1_mounts.end()) {
      file = mount->second / fs::path(path).relative_path() / kV1Join;
    } else {
      throw Error(ErrorKind::unsupported, "pid " + std::to_string(pid) + " is in cgroup '" + path +
                                              "' of hierarchy '" + hierarchy + "', which is not mounted here");
    }
    // Co-mounted controllers ("cpu,cpuacct") name one folder: join it once.
    if (std::find(out.begin(), out.end(), file.string()) != out.end()) continue;
    if (hierarchy == "cpuset") out.insert(out.begin(), file.string());  // never on a CPU it should not be
    else out.push_back(file.string());
  }
  return out;
}

JoinOnlyCgroup JoinOnlyCgroup::of_dirfd(int cgroup_fd) {
  return JoinOnlyCgroup({"/proc/self/fd/" + std::to_string(cgroup_fd) + "/" + kV2Join});
}

std::vector<UniqueFd> JoinOnlyCgroup::open_join_files() const {
  std::vector<UniqueFd> fds;
  for (const auto& path : paths_) {
    fds.emplace_back(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fds.back()) throw_system_error("open " + path);
  }
  return fds;
}

void JoinOnlyCgroup::place(pid_t pid) {
  throw Error(ErrorKind::system, "pid " + std::to_string(pid) + ": nothing to join (no cgroup differs)");
}

std::string JoinOnlyCgroup::location() const {
  std::string out;
  for (const auto& p : paths_) out += (out.empty() ? "" : " ") + fs::path(p).parent_path().string();
  return out;
}

}  // namespace runscope::driver
