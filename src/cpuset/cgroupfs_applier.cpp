#include "cpuset/cgroupfs_applier.hpp"

#include <cerrno>
#include <sstream>

#include "cgroup/util.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cpuset {
namespace {

constexpr const char* kCpusetController = "cpuset";

// Whether a space-separated control file (cgroup.controllers, cgroup.subtree_control) names `word`.
bool has_word(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  for (std::string w; in >> w;) {
    if (w == word) return true;
  }
  return false;
}

CpuSet read_cpus(const std::filesystem::path& file) {
  std::string text = read_file(file);
  try {
    return CpuSet::parse(text);
  } catch (const Error& e) {
    throw Error(ErrorKind::system, file.string() + ": " + e.what());
  }
}

}  // namespace

CgroupfsApplier::CgroupfsApplier(CgroupfsApplierOptions options) : o_(std::move(options)) {}

std::string CgroupfsApplier::name() const {
  return std::string("cgroupfs ") + std::string(cgroup::to_string(o_.version)) + " at " + o_.parent_dir.string();
}

std::filesystem::path CgroupfsApplier::folder(const Target& target) const {
  switch (target.kind) {
    case Target::Kind::shared: return o_.parent_dir / cgroup::kSharedPartition;
    case Target::Kind::reserved: return o_.parent_dir / cgroup::kReservedPartition;
    case Target::Kind::task: break;
  }
  return o_.parent_dir / cgroup::kReservedPartition / target.task->cgroup_name();
}

// v1: a new cpuset folder starts with no CPUs and no memory nodes, and no process may join it
// until both are set; the memory nodes are copied from its parent once and never changed.
void CgroupfsApplier::make_folder(const std::filesystem::path& dir) {
  int err = o_.ops.make_dir(dir);
  if (err == EEXIST) return;
  if (err != 0) throw_system_error("mkdir " + dir.string(), err);
  if (o_.version == cgroup::Version::v1) {
    auto up = dir.parent_path();
    write_file(dir / kMemsFile, trim(read_file(up / kMemsFile)));
  }
}

// v2: a child's cpuset.cpus exists only when the parent enables the controller for its children.
// A level that already hands it down is not written (a restart writes nothing; an admin may have
// enabled it where we could not).
void CgroupfsApplier::enable_cpuset(const std::filesystem::path& dir) {
  if (has_word(read_file_if_exists(dir / kSubtreeControlFile).value_or(""), kCpusetController)) return;
  auto offered = read_file(dir / kControllersFile);
  if (!has_word(offered, kCpusetController))
    throw Error(ErrorKind::unsupported,
                "the cpuset controller is not available in " + (dir / kControllersFile).string());
  write_file(dir / kSubtreeControlFile, std::string("+") + kCpusetController);
}

// v2 with the mount known: every level from the mount down to the parent exists and hands cpuset
// down, outermost first (a level can only enable what its own parent handed it).
void CgroupfsApplier::prepare_v2_path() {
  auto relative = o_.parent_dir.lexically_relative(o_.mount);
  if (relative.empty() || *relative.begin() == "..") {
    throw Error(ErrorKind::invalid_argument,
                "cpuset parent " + o_.parent_dir.string() + " is not below the cgroup2 mount " + o_.mount.string());
  }
  cgroup::cg_make_path(o_.ops, o_.mount, relative);
  std::filesystem::path level = o_.mount;
  enable_cpuset(level);
  for (const auto& part : relative) enable_cpuset(level /= part);
}

void CgroupfsApplier::prepare(const CpuSet& usable) {
  const bool v1 = o_.version == cgroup::Version::v1;
  bool fresh = !std::filesystem::exists(o_.parent_dir);
  if (!v1 && !o_.mount.empty()) prepare_v2_path();  // makes the parent too
  make_folder(o_.parent_dir);
  if (v1) {
    // The parent must hold every CPU the partitions will, or the kernel refuses their writes.
    CpuSet have = read_cpus(o_.parent_dir / kCpusFile);
    if (fresh || !usable.is_subset_of(have)) {
      CpuSet want = fresh ? usable : (have | usable);
      write_file(o_.parent_dir / kCpusFile, want.to_string());
    }
  } else if (o_.mount.empty()) {
    enable_cpuset(o_.parent_dir.parent_path());
    enable_cpuset(o_.parent_dir);
  }
  make_folder(folder(Target::shared()));
  make_folder(folder(Target::reserved()));
  if (!v1) enable_cpuset(folder(Target::reserved()));
}

std::optional<CpuSet> CgroupfsApplier::read(const Target& target) {
  auto file = folder(target) / kCpusFile;
  auto text = read_file_if_exists(file);
  if (!text) return std::nullopt;
  try {
    return CpuSet::parse(*text);
  } catch (const Error& e) {
    throw Error(ErrorKind::system, file.string() + ": " + e.what());
  }
}

void CgroupfsApplier::write(const Target& target, const CpuSet& cpus) {
  write_file(folder(target) / kCpusFile, cpus.to_string());
}

}  // namespace runscope::cpuset
