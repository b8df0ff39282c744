#include "cgroup/v1_backend.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "cgroup/supervisor_home.hpp"
#include "cgroup/util.hpp"
#include "cgroup/v1_task.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;

std::vector<std::pair<std::string, const char*>> required_controllers(const Limits& limits) {
  std::vector<std::pair<std::string, const char*>> out;
  if (limits.memory_max) out.emplace_back("memory", "memory_max");
  if (limits.cpu_weight) out.emplace_back("cpu", "cpu_weight");
  if (limits.pids_max) out.emplace_back("pids", "pids_max");
  if (limits.cpuset) out.emplace_back("cpuset", "cpuset");
  if (limits.partition != CpuPartition::none) out.emplace_back("cpuset", "a cpu partition");
  return out;
}

// A v1 cpuset folder starts with no CPUs and no memory nodes, and no process can join it until
// both are set: copy them down from the parent when empty.
void cg_inherit_cpuset(const fs::path& dir) {
  for (const char* file : {v1file::kCpusetCpus, v1file::kCpusetMems}) {
    if (!trim(read_file(dir / file)).empty()) continue;
    write_file(dir / file, trim(read_file(dir.parent_path() / file)));
  }
}

using CpusetValues = std::pair<std::string, std::string>;  // cpuset.cpus, cpuset.mems

// What the kernel answers when a cpuset folder is given CPUs or nodes its parent lacks (v1's
// validate_change says EACCES for "not a subset of the parent"; EINVAL/ENOSPC for offline or empty
// sets): the sign that a cached copy of the parent's values is stale. A real permission problem
// fails again after the re-read, so retrying once costs nothing.
bool cg_cpuset_stale(const Error& e) {
  int err = e.error_number();
  return e.kind() == ErrorKind::system && (err == EACCES || err == EINVAL || err == ENOSPC);
}

// The parent folder's cpuset.cpus/mems, read once and reused for every task folder below it, so a
// task's create costs two writes instead of four reads and two writes. A write the kernel refuses
// (the parent changed) makes the caller read the parent afresh, replacing the entry.
class CpusetParentCache {
 public:
  std::optional<CpusetValues> get(const fs::path& parent) const {
    std::lock_guard lock(mutex_);
    auto it = values_.find(parent);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  void put(const fs::path& parent, CpusetValues values) {
    std::lock_guard lock(mutex_);
    values_[parent] = std::move(values);
  }

 private:
  mutable std::mutex mutex_;
  std::map<fs::path, CpusetValues> values_;
};

class V1Backend final : public Backend {
 public:
  explicit V1Backend(V1Options options) : o_(std::move(options)) {
    cg_check_parent(o_.parent);
    supervisors_ = make_supervisor_folders();
  }

  std::string manager_name() const override { return "cgroupfs"; }

  std::unique_ptr<TaskCgroup> create(const TaskId& id, const Limits& limits) override {
    for (const auto& [controller, limit] : required_controllers(limits)) {
      if (!o_.layout.v1_mounts.count(controller)) {
        throw Error(ErrorKind::unsupported, "cgroup v1 controller '" + controller + "' (needed for " + limit +
                                                ") is not mounted on this host");
      }
    }
    auto hierarchies = plan(id.cgroup_name(), limits.partition, needs_cpuset(limits));
    std::vector<fs::path> made;  // in creation order, for rollback
    try {
      for (auto& h : hierarchies) make(h, limits.partition, made);
      apply_limits(hierarchies, limits);
      return std::make_unique<V1TaskCgroup>(std::move(hierarchies), *o_.clock, o_.ops, o_.proc_root, supervisors_);
    } catch (...) {
      for (auto it = made.rbegin(); it != made.rend(); ++it) o_.ops.remove_dir(*it);
      throw;
    }
  }

  std::unique_ptr<TaskCgroup> adopt(const std::string& name, CpuPartition partition) override {
    cg_check_name(name);
    auto hierarchies = plan(name, partition, true);  // whatever exists is owned again
    bool any = false;
    for (const auto& h : hierarchies) any = any || (h.owned && fs::is_directory(h.dir));
    if (!any) throw Error(ErrorKind::not_found, "no cgroup " + name + " under " + o_.parent);
    // Folders missing in some hierarchy (a crash mid-create) are skipped by the task cgroup.
    std::vector<V1Hierarchy> present;
    for (auto& h : hierarchies) {
      if (!h.owned || fs::is_directory(h.dir)) present.push_back(std::move(h));
    }
    return std::make_unique<V1TaskCgroup>(std::move(present), *o_.clock, o_.ops, o_.proc_root, supervisors_);
  }

  std::vector<std::pair<std::string, CpuPartition>> existing() const override {
    std::map<std::string, CpuPartition> found;
    for (const auto& h : plan("x", CpuPartition::none, true)) {
      fs::path base = h.dir.parent_path();
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(base, ec)) {
        auto name = e.path().filename().string();
        if (!e.is_directory() || name == kSharedPartition || name == kSupervisorsFolder) continue;
        if (name != kReservedPartition) {
          found.emplace(name, CpuPartition::none);
          continue;
        }
        for (const auto& r : fs::directory_iterator(e.path(), ec)) {
          if (r.is_directory()) found[r.path().filename().string()] = CpuPartition::reserved;
        }
      }
    }
    return {found.begin(), found.end()};
  }

 private:
  static void cg_check_name(const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      throw Error(ErrorKind::invalid_argument, "cgroup name '" + name + "' is not a folder name");
    }
  }

  // A cpuset folder of its own gives a task nothing but cost (a mkdir, two copy-down writes, a
  // cgroup.procs write and an rmdir) unless it has CPUs of its own or follows a partition:
  // otherwise it stays in the cpuset cgroup it was spawned from, which holds the same CPUs.
  static bool needs_cpuset(const Limits& limits) {
    return limits.cpuset.has_value() || limits.partition != CpuPartition::none;
  }

  // The task's folder in every mounted hierarchy it uses (co-mounted controllers share one). A
  // hierarchy holding only the cpuset controller is skipped when `with_cpuset` is false.
  std::vector<V1Hierarchy> plan(const std::string& name, CpuPartition partition, bool with_cpuset) const {
    std::map<fs::path, V1Hierarchy> by_mount;
    for (const char* c : kV1TaskControllers) {
      auto it = o_.layout.v1_mounts.find(c);
      if (it == o_.layout.v1_mounts.end()) continue;
      auto& h = by_mount[it->second];
      h.mount = it->second;
      h.controllers.push_back(c);
    }
    std::vector<V1Hierarchy> out;
    for (auto& [mount, h] : by_mount) {
      if (!with_cpuset && h.controllers == std::vector<std::string>{"cpuset"}) continue;
      fs::path base = h.mount / parent_in(h).relative_path();
      if (h.has("cpuset") && partition == CpuPartition::shared) {
        h.dir = base / kSharedPartition;
        h.owned = false;
      } else if (h.has("cpuset") && partition == CpuPartition::reserved) {
        h.dir = base / kReservedPartition / name;
      } else {
        h.dir = base / name;
      }
      out.push_back(std::move(h));
    }
    return out;
  }

  // Every shim's home: `<parent>/supervisors` in each hierarchy a task may use, cpuset included
  // (with the parent's cpus and mems), so no hierarchy leaves a shim in the daemon's own cgroup.
  // Made when the first shim needs it; cpuset first, as for tasks.
  std::shared_ptr<const SupervisorFolders> make_supervisor_folders() const {
    std::vector<SupervisorFolder> folders;
    std::vector<std::tuple<fs::path, fs::path, bool>> levels;  // mount, folder relative to it, cpuset
    for (const auto& h : plan("x", CpuPartition::none, true)) {
      const auto dir = h.dir.parent_path() / kSupervisorsFolder;
      SupervisorFolder f{dir, v1file::kTasks, h.controllers.front(), "/" + dir.lexically_relative(h.mount).string()};
      auto level = std::make_tuple(h.mount, f.dir.lexically_relative(h.mount), h.has("cpuset"));
      if (h.has("cpuset")) {
        folders.insert(folders.begin(), f);
      } else {
        folders.push_back(f);
      }
      levels.push_back(level);
    }
    auto make = [this, levels] {
      for (const auto& [mount, relative, cpuset] : levels) {
        cg_make_path(o_.ops, mount, relative);
        if (cpuset) inherit_along(mount, relative);
      }
    };
    return std::make_shared<SupervisorFolders>(std::move(folders), std::move(make), o_.proc_root);
  }

  // The parent folder, relative to the hierarchy's root.
  fs::path parent_in(const V1Hierarchy& h) const {
    fs::path parent(o_.parent);
    auto own = o_.own.find(h.controllers.front());
    fs::path mine = own == o_.own.end() ? fs::path("/") : fs::path(own->second);
    if (parent.is_absolute() && !(h.has("memory") && mine != "/")) return parent;
    return mine / parent.relative_path();
  }

  void make(const V1Hierarchy& h, CpuPartition partition, std::vector<fs::path>& made) const {
    // Every task after the first finds its parents made: try the task's own folder alone first.
    if (h.owned && make_task_dir(h, made)) return;
    bool cpuset = h.has("cpuset");
    fs::path relative = h.dir.parent_path().lexically_relative(h.mount);
    if (!h.owned) relative = h.dir.lexically_relative(h.mount);  // the shared partition itself
    auto new_dirs = cg_make_path(o_.ops, h.mount, relative);
    // Parents (and partition folders) stay: other tasks use them; only a failed create's own
    // non-partition parents are rolled back.
    for (const auto& d : new_dirs) {
      if (partition == CpuPartition::none || d.filename() != (h.owned ? kReservedPartition : kSharedPartition)) {
        made.push_back(d);
      }
    }
    if (cpuset && (!h.owned || !new_dirs.empty())) inherit_along(h.mount, relative);
    if (h.owned && !make_task_dir(h, made)) throw_system_error("mkdir " + h.dir.string(), ENOENT);
  }

  // mkdir of the task's folder (and its cpuset); false when its parent does not exist.
  bool make_task_dir(const V1Hierarchy& h, std::vector<fs::path>& made) const {
    int err = o_.ops.make_dir(h.dir);
    if (err == ENOENT) return false;
    if (err == EEXIST) throw Error(ErrorKind::conflict, "cgroup " + h.dir.string() + " already exists", err);
    if (err != 0) throw_system_error("mkdir " + h.dir.string(), err);
    made.push_back(h.dir);
    if (h.has("cpuset")) inherit_cached(h);
    return true;
  }

  // Every level from the mount down to `relative` gets CPUs and nodes if it has none; the
  // innermost level's values are cached for the task folders made below it, and returned.
  CpusetValues inherit_along(const fs::path& mount, const fs::path& relative) const {
    fs::path level = mount;
    for (const auto& part : relative) cg_inherit_cpuset(level /= part);
    CpusetValues values{trim(read_file(level / v1file::kCpusetCpus)), trim(read_file(level / v1file::kCpusetMems))};
    cpuset_cache_.put(level, values);
    return values;
  }

  // A fresh v1 cpuset folder is empty (or, with clone_children, already a copy of its parent), so
  // the parent's cached values are written without reading the folder first.
  void inherit_cached(const V1Hierarchy& h) const {
    const fs::path parent = h.dir.parent_path();
    auto write = [&](const CpusetValues& values) {
      write_file(h.dir / v1file::kCpusetCpus, values.first);
      write_file(h.dir / v1file::kCpusetMems, values.second);
    };
    auto values = cpuset_cache_.get(parent);
    try {
      write(values ? *values : inherit_along(h.mount, parent.lexically_relative(h.mount)));
    } catch (const Error& e) {
      if (!cg_cpuset_stale(e)) throw;
      write(inherit_along(h.mount, parent.lexically_relative(h.mount)));
    }
  }

  static void apply_limits(const std::vector<V1Hierarchy>& hierarchies, const Limits& limits) {
    for (const auto& h : hierarchies) {
      if (!h.owned) continue;
      if (limits.memory_max && h.has("memory")) {
        write_file(h.dir / v1file::kMemoryLimit, std::to_string(*limits.memory_max));
      }
      if (limits.cpu_weight && h.has("cpu")) {
        write_file(h.dir / v1file::kCpuShares, std::to_string(cg_weight_to_shares(*limits.cpu_weight)));
      }
      if (limits.pids_max && h.has("pids")) write_file(h.dir / v1file::kPidsMax, std::to_string(*limits.pids_max));
      if (limits.cpuset && h.has("cpuset")) write_file(h.dir / v1file::kCpusetCpus, limits.cpuset->to_string());
    }
  }

  V1Options o_;
  mutable CpusetParentCache cpuset_cache_;
  std::shared_ptr<const SupervisorFolders> supervisors_;
};

}  // namespace

std::unique_ptr<Backend> make_v1_backend(V1Options options) {
  return std::make_unique<V1Backend>(std::move(options));
}

}  // namespace runscope::cgroup
