#include "systemd/supervisor_home.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup/util.hpp"
#include "cgroup/v2_dir.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "systemd/properties.hpp"
#include "systemd/scope_backend.hpp"

namespace runscope::systemd {
namespace {

namespace fs = std::filesystem;

constexpr int kExecFailed = 127;

// Only async-signal-safe calls between fork and exec: the daemon has other threads (hence _Fork,
// which runs no atfork handler). The anchor is a grandchild whose parent exits at once, so it is
// nobody's child to reap and outlives us.
[[noreturn]] void exec_anchor(char* const* argv, int devnull, int report) {
  ::setsid();
  pid_t pid = ::_Fork();
  if (pid != 0) {
    (void)!::write(report, &pid, sizeof pid);
    ::_exit(pid > 0 ? 0 : 1);
  }
  for (int fd = 0; fd <= 2; ++fd) ::dup2(devnull, fd);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execv(argv[0], argv);
  ::_exit(kExecFailed);
}

// rmdir, retried while the kernel still counts an exiting process in it.
void remove_folder(const cgroup::CgroupFsOps& ops, const fs::path& dir, const Deadline& deadline) {
  int err = 0;
  cgroup::cg_poll_until(deadline, [&] {
    err = ops.remove_dir(dir);
    return err == 0 || err == ENOENT;
  });
  if (err != 0 && err != ENOENT) throw_system_error("rmdir " + dir.string(), err);
}

}  // namespace

SupervisorsScope::SupervisorsScope(SystemdBackend& backend, std::vector<std::string> anchor)
    : backend_(backend),
      anchor_(std::move(anchor)),
      unit_(supervisors_scope_for(backend.options().parent_slice)),
      slice_(supervisor_slice_for(backend.options().parent_slice)) {}

fs::path SupervisorsScope::existing_folder() {
  auto& manager = backend_.manager();
  auto status = manager.unit_status(unit_);
  if (!status || status->active_state != "active") return {};
  const auto cg = manager.control_group(unit_);
  if (cg.empty()) return {};
  // By its cgroup, not its Slice property (see SystemdBackend::adopt); someone else's is never used.
  const auto slice = fs::path(cg).parent_path().filename().string();
  if (slice != slice_)
    throw Error(ErrorKind::conflict, "systemd unit " + unit_ + " runs in slice '" + slice + "', not in " + slice_ +
                                         "; not using it for runscope's supervisors");
  return backend_.options().cgroup_root / fs::path(cg).relative_path();
}

fs::path SupervisorsScope::folder() {
  std::lock_guard lock(mutex_);
  if (!folder_.empty() && fs::is_directory(folder_)) return folder_;  // one stat per start
  folder_ = existing_folder();
  if (folder_.empty()) folder_ = make();
  return folder_;
}

fs::path SupervisorsScope::current_folder() {
  std::lock_guard lock(mutex_);
  if (folder_.empty() || !fs::is_directory(folder_)) folder_ = existing_folder();
  return folder_;
}

pid_t SupervisorsScope::spawn_anchor() const {
  if (anchor_.empty()) throw Error(ErrorKind::unsupported, "no command to keep " + unit_ + " with");
  std::vector<std::string> args = anchor_;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Pipe report = make_pipe();
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_system_error("open /dev/null");
  pid_t middle = ::fork();
  if (middle < 0) throw_system_error("fork the anchor of " + unit_);
  if (middle == 0) exec_anchor(argv.data(), devnull.get(), report.write.get());
  report.write.reset();
  while (::waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_t anchor = 0;
  if (::read(report.read.get(), &anchor, sizeof anchor) != static_cast<ssize_t>(sizeof anchor) || anchor <= 0)
    throw Error(ErrorKind::system, "could not start the anchor of " + unit_ + " (" + anchor_.front() + ")");
  return anchor;
}

// The scope around a new anchor. Our own dead scope of that name is reset first; one that is not
// in the supervisors' slice is never touched.
fs::path SupervisorsScope::make() {
  auto& manager = backend_.manager();
  if (auto status = manager.unit_status(unit_)) {
    const auto slice = backend_.slice_property(unit_);
    if (slice != slice_)
      throw Error(ErrorKind::conflict, "systemd unit " + unit_ + " exists in slice '" + slice + "', not in " + slice_ +
                                           "; not using it for runscope's supervisors");
    manager.reset_failed_unit(unit_);
  }
  const pid_t anchor = spawn_anchor();
  try {
    manager.start_transient_unit(unit_, supervisors_scope_properties(slice_, anchor));
    const auto cg = manager.control_group(unit_);
    const auto actual = unified_cgroup_of(backend_.options().proc_root, anchor);
    if (cg.empty() || actual != cg)
      throw Error(ErrorKind::system, "the anchor of " + unit_ + " (pid " + std::to_string(anchor) + ") is in '" +
                                         actual + "', not in the scope's cgroup '" + cg + "'");
    return backend_.options().cgroup_root / fs::path(cg).relative_path();
  } catch (...) {
    ::kill(anchor, SIGKILL);  // just made, not our child: its pid can't have been reused yet
    throw;
  }
}

void SupervisorsScope::remove_strays(const std::set<std::string>& running) {
  const auto dir = current_folder();
  if (dir.empty()) return;
  const auto& options = backend_.options();
  std::string failed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory() || running.count(entry.path().filename().string())) continue;
    try {
      Deadline deadline(backend_.clock(), options.destroy_timeout);
      cgroup::V2Dir::open(entry.path()).kill_all(deadline);
      remove_folder(options.ops, entry.path(), deadline);
    } catch (const std::exception& e) {
      failed += (failed.empty() ? "" : "; ") + std::string(e.what());
    }
  }
  if (!failed.empty()) throw Error(ErrorKind::system, "removing the cgroups of shims no task owns: " + failed);
  if (running.empty()) stop();  // no task runs: no anchor lingers (a package removal stops the daemon)
}

void SupervisorsScope::stop() {
  std::lock_guard lock(mutex_);
  backend_.manager().stop_unit(unit_);  // its anchor goes with it; the next start makes it again
  backend_.manager().reset_failed_unit(unit_);
  folder_.clear();
}

fs::path ShimCgroup::make() const {
  const auto& ops = scope_.backend().options().ops;
  for (int attempt = 1;; ++attempt) {
    const auto dir = scope_.folder() / name_;
    const int err = ops.make_dir(dir);
    // EEXIST: left by a daemon that died before removing it; empty, or it would not be ours to make.
    if (err == 0 || err == EEXIST) return dir;
    // ENOENT: the scope ended between the look and the mkdir (its anchor and last shim gone).
    if (err != ENOENT || attempt == 2) throw_system_error("mkdir " + dir.string(), err);
  }
}

std::vector<int> ShimCgroup::join_fds() const {
  if (!procs_) {
    const auto file = make() / cgroup::v2file::kProcs;
    procs_.reset(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!procs_) throw_system_error("open " + file.string());
  }
  return {procs_.get()};
}

void ShimCgroup::move_in(pid_t shim) {
  const auto& options = scope_.backend().options();
  const auto current = scope_.current_folder();
  const auto want = current.empty() ? fs::path() : "/" / (current / name_).lexically_relative(options.cgroup_root);
  if (!want.empty() && unified_cgroup_of(options.proc_root, shim) == want.string()) return;  // home already
  write_file(make() / cgroup::v2file::kProcs, std::to_string(shim));
}

void ShimCgroup::remove(const Deadline& deadline) noexcept {
  try {
    const auto scope = scope_.current_folder();
    if (scope.empty() || !fs::is_directory(scope / name_)) return;  // an ended scope takes its cgroups
    auto dir = cgroup::V2Dir::open(scope / name_);
    if (dir.populated()) dir.kill_all(deadline);
    remove_folder(scope_.backend().options().ops, scope / name_, deadline);
  } catch (...) {
    // Best effort: a cgroup left here is removed at the next recovery (remove_strays).
  }
}

}  // namespace runscope::systemd
