#include "cgroup/migration_primer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "cgroup/host.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"

namespace runscope::cgroup {

int prime_migration_lock(const MigrationPrimerPaths& paths, pid_t tid) {
  std::string own;
  try {
    const auto cgroups = own_cgroups(paths.thread_cgroup);
    const auto it = cgroups.find(kUnifiedKey);
    if (it == cgroups.end()) return ENOENT;
    own = it->second;
  } catch (const Error& e) {
    return e.error_number() != 0 ? e.error_number() : ENOENT;
  }
  const auto file = paths.unified_mount / std::filesystem::path(own).relative_path() / "cgroup.threads";
  // No O_CREAT: on a real cgroupfs the file is the kernel's, and nothing is made where it is not.
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return errno;
  const std::string text = std::to_string(tid);
  if (::write(fd.get(), text.data(), text.size()) < 0) return errno;
  return 0;
}

MigrationPrimer::MigrationPrimer(MigrationPrimerPaths paths)
    : thread_([this, paths = std::move(paths)] { result_ = prime_migration_lock(paths, ::gettid()); }) {}

MigrationPrimer::~MigrationPrimer() { finish(); }

int MigrationPrimer::finish() {
  if (thread_.joinable()) thread_.join();
  return result_;
}

}  // namespace runscope::cgroup
