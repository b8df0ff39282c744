#include "cgroup/supervisor_home.hpp"

#include <fcntl.h>

#include "cgroup/host.hpp"
#include "cgroup/v2_dir.hpp"
#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cgroup {

SupervisorFolders::SupervisorFolders(std::vector<SupervisorFolder> folders, std::function<void()> make,
                                     std::filesystem::path proc_root)
    : folders_(std::move(folders)), make_(std::move(make)), proc_root_(std::move(proc_root)) {}

// Empty when a folder is missing; throws on any other failure.
std::vector<UniqueFd> SupervisorFolders::try_open() const {
  std::vector<UniqueFd> fds;
  for (const auto& f : folders_) {
    auto path = f.dir / f.join_file;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd && errno == ENOENT) return {};
    if (!fd) throw_system_error("open " + path.string());
    fds.push_back(std::move(fd));
  }
  return fds;
}

std::vector<UniqueFd> SupervisorFolders::open_join_files() const {
  auto fds = try_open();
  if (!fds.empty() || folders_.empty()) return fds;
  {
    std::lock_guard lock(make_mutex_);  // two first starts must not both copy cpusets down
    make_();
  }
  fds = try_open();
  if (fds.empty()) throw Error(ErrorKind::system, "the supervisors' cgroup " + location() + " vanished as it was made");
  return fds;
}

void SupervisorFolders::move_in(pid_t pid) const {
  auto now = parse_proc_cgroup(read_file(proc_root_ / std::to_string(pid) / "cgroup"));
  std::vector<const SupervisorFolder*> away;
  for (const auto& f : folders_) {
    if (now[f.key] != f.path) away.push_back(&f);
  }
  if (away.empty()) return;  // home already: the usual case at every recovery
  open_join_files();  // makes the folders when missing
  for (const auto* f : away) write_file(f->dir / v2file::kProcs, std::to_string(pid));
}

std::string SupervisorFolders::location() const {
  std::string out;
  for (const auto& f : folders_) out += (out.empty() ? "" : " ") + f.dir.string();
  return out;
}

std::vector<int> FolderSupervisorHome::join_fds() const {
  if (fds_.empty()) fds_ = folders_->open_join_files();
  std::vector<int> out;
  for (const auto& fd : fds_) out.push_back(fd.get());
  return out;
}

}  // namespace runscope::cgroup
