#include "cpuset/cgroupfs_applier.hpp"

#include <cerrno>

#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cpuset {
namespace {

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
void CgroupfsApplier::enable_cpuset(const std::filesystem::path& dir) {
  auto offered = read_file(dir / kControllersFile);
  if (offered.find("cpuset") == std::string::npos)
    throw Error(ErrorKind::unsupported,
                "the cpuset controller is not available in " + (dir / kControllersFile).string());
  write_file(dir / kSubtreeControlFile, "+cpuset");
}

void CgroupfsApplier::prepare(const CpuSet& usable) {
  const bool v1 = o_.version == cgroup::Version::v1;
  bool fresh = !std::filesystem::exists(o_.parent_dir);
  make_folder(o_.parent_dir);
  if (v1) {
    // The parent must hold every CPU the partitions will, or the kernel refuses their writes.
    CpuSet have = read_cpus(o_.parent_dir / kCpusFile);
    if (fresh || !usable.is_subset_of(have)) {
      CpuSet want = fresh ? usable : (have | usable);
      write_file(o_.parent_dir / kCpusFile, want.to_string());
    }
  } else {
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
