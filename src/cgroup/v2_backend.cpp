#include "cgroup/v2_backend.hpp"

#include <algorithm>
#include <sstream>

#include "cgroup/host.hpp"
#include "cgroup/supervisor_home.hpp"
#include "cgroup/util.hpp"
#include "cgroup/v2_dir.hpp"
#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;

constexpr auto kDestructorBudget = std::chrono::seconds(10);
// Controllers we enable where offered (stats, limits); the ones limits need are required.
constexpr const char* kWanted[] = {"cpu", "cpuset", "memory", "pids"};

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::vector<std::pair<std::string, const char*>> required_controllers(const Limits& limits) {
  std::vector<std::pair<std::string, const char*>> out;
  if (limits.memory_max) out.emplace_back("memory", "memory_max");
  if (limits.cpu_weight) out.emplace_back("cpu", "cpu_weight");
  if (limits.pids_max) out.emplace_back("pids", "pids_max");
  if (limits.cpuset) out.emplace_back("cpuset", "cpuset");
  // A partition's cpus reach its tasks only through the cpuset controller.
  if (limits.partition != CpuPartition::none) out.emplace_back("cpuset", "a cpu partition");
  return out;
}

class V2TaskCgroup final : public TaskCgroup {
 public:
  V2TaskCgroup(V2Dir dir, Clock& clock, CgroupFsOps ops, std::shared_ptr<const SupervisorFolders> supervisors)
      : dir_(std::move(dir)), clock_(clock), ops_(std::move(ops)), supervisors_(std::move(supervisors)) {}

  ~V2TaskCgroup() override {
    try {
      destroy(Deadline(clock_, kDestructorBudget));
    } catch (...) {
      // Best effort by contract: a destructor never throws.
    }
  }

  int clone_into_fd() const override { return dir_.fd(); }

  void place(pid_t pid) override {
    dir_.write(v2file::kProcs, std::to_string(pid));
    auto now = dir_.pids();
    if (std::find(now.begin(), now.end(), pid) == now.end()) {
      throw Error(ErrorKind::system, "pid " + std::to_string(pid) + " is not listed in " + location() +
                                         "/cgroup.procs after moving it there");
    }
  }

  std::vector<pid_t> pids() const override { return dir_.pids(); }
  bool populated() const override { return dir_.populated(); }

  void kill_all(const Deadline& deadline, KillMethod method) override {
    if (!destroyed_) dir_.kill_all(deadline, method);
  }

  void destroy(const Deadline& deadline) override {
    if (destroyed_) return;
    dir_.kill_all(deadline);
    // A just-emptied cgroup can refuse rmdir (EBUSY) for a moment while exits finish.
    int err = 0;
    cg_poll_until(deadline, [&] {
      err = ops_.remove_dir(dir_.path());
      return err == 0 || err == ENOENT;
    });
    if (err != 0 && err != ENOENT) throw_system_error("rmdir " + location(), err);
    destroyed_ = true;
  }

  void set_cpuset(const CpuSet& cpus) override { dir_.set_cpuset(cpus); }
  Stats stats() const override { return dir_.stats(); }
  Folders folders() const override { return Folders{dir_.path(), {}}; }
  std::string location() const override { return dir_.path().string(); }
  void disown() noexcept override { destroyed_ = true; }
  SupervisorHome* supervisor_home() const override {
    if (!home_) home_ = std::make_unique<FolderSupervisorHome>(supervisors_);
    return home_.get();
  }

 private:
  V2Dir dir_;
  Clock& clock_;
  CgroupFsOps ops_;
  std::shared_ptr<const SupervisorFolders> supervisors_;
  mutable std::unique_ptr<FolderSupervisorHome> home_;  // made when first asked for
  bool destroyed_ = false;
};

class V2Backend final : public Backend {
 public:
  explicit V2Backend(V2Options options) : o_(std::move(options)) {
    cg_check_parent(o_.parent);
    // Every shim's home, `<parent>/supervisors`, made when the first shim needs it: a leaf beside
    // the tasks, so the parent itself stays free of processes (the no-internal-process rule).
    SupervisorFolder folder{o_.root / o_.parent / kSupervisorsFolder, v2file::kProcs, kUnifiedKey,
                            "/" + (o_.parent / kSupervisorsFolder).relative_path().string()};
    supervisors_ = std::make_shared<SupervisorFolders>(std::vector<SupervisorFolder>{folder}, [this] {
      cg_make_path(o_.ops, o_.root, o_.parent / kSupervisorsFolder);
    });
  }

  std::string manager_name() const override { return "cgroupfs"; }

  std::unique_ptr<TaskCgroup> create(const TaskId& id, const Limits& limits) override {
    check_controllers(limits);
    fs::path folder = o_.parent;
    if (limits.partition == CpuPartition::shared) folder /= kSharedPartition;
    if (limits.partition == CpuPartition::reserved) folder /= kReservedPartition;
    auto made = cg_make_path(o_.ops, o_.root, folder);
    fs::path task = o_.root / folder / id.cgroup_name();
    try {
      enable_controllers(folder, limits);
      int err = o_.ops.make_dir(task);
      if (err == EEXIST) throw Error(ErrorKind::conflict, "cgroup " + task.string() + " already exists", err);
      if (err != 0) throw_system_error("mkdir " + task.string(), err);
      made.push_back(task);
      auto dir = V2Dir::open(task);
      apply_limits(dir, limits);
      return std::make_unique<V2TaskCgroup>(std::move(dir), *o_.clock, o_.ops, supervisors_);
    } catch (...) {
      rollback(made, limits.partition != CpuPartition::none ? o_.root / folder : fs::path());
      throw;
    }
  }

  std::unique_ptr<TaskCgroup> adopt(const std::string& name, CpuPartition partition) override {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      throw Error(ErrorKind::invalid_argument, "cgroup name '" + name + "' is not a folder name");
    }
    fs::path task = o_.root / partition_folder(partition) / name;
    if (!fs::is_directory(task)) throw Error(ErrorKind::not_found, "no cgroup " + task.string());
    return std::make_unique<V2TaskCgroup>(V2Dir::open(task), *o_.clock, o_.ops, supervisors_);
  }

  std::vector<std::pair<std::string, CpuPartition>> existing() const override {
    std::vector<std::pair<std::string, CpuPartition>> out;
    for (auto p : {CpuPartition::none, CpuPartition::shared, CpuPartition::reserved}) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(o_.root / partition_folder(p), ec)) {
        auto name = e.path().filename().string();
        if (!e.is_directory()) continue;
        if (p == CpuPartition::none &&
            (name == kSharedPartition || name == kReservedPartition || name == kSupervisorsFolder)) {
          continue;
        }
        out.emplace_back(name, p);
      }
    }
    return out;
  }

 private:
  fs::path partition_folder(CpuPartition partition) const {
    fs::path folder = o_.parent;
    if (partition == CpuPartition::shared) folder /= kSharedPartition;
    if (partition == CpuPartition::reserved) folder /= kReservedPartition;
    return folder;
  }

  // Fails before anything is made when the kernel does not offer a controller a limit needs.
  void check_controllers(const Limits& limits) const {
    auto offered = words(read_file_if_exists(o_.root / v2file::kControllers).value_or(""));
    for (const auto& [controller, limit] : required_controllers(limits)) {
      if (!contains(offered, controller)) {
        throw Error(ErrorKind::unsupported, "cgroup v2 controller '" + controller + "' (needed for " + limit +
                                                ") is not available in " + o_.root.string());
      }
    }
  }

  // Each folder from the root down to the task's parent hands the wanted controllers down.
  void enable_controllers(const fs::path& folder, const Limits& limits) const {
    auto required = required_controllers(limits);
    fs::path current = o_.root;
    std::vector<fs::path> levels{current};
    for (const auto& part : folder.relative_path()) levels.push_back(current /= part);
    for (const auto& level : levels) {
      auto offered = words(read_file_if_exists(level / v2file::kControllers).value_or(""));
      std::string wanted, needed;
      for (const char* c : kWanted) {
        if (!contains(offered, c)) continue;
        wanted += (wanted.empty() ? "+" : " +") + std::string(c);
        bool is_required = std::any_of(required.begin(), required.end(), [&](const auto& r) { return r.first == c; });
        if (is_required) needed += (needed.empty() ? "+" : " +") + std::string(c);
      }
      if (wanted.empty()) continue;
      try {
        write_file(level / v2file::kSubtreeControl, wanted);
      } catch (const Error&) {
        // Optional controllers may stay off (e.g. a threaded subtree); the required ones may not.
        if (!needed.empty()) write_file(level / v2file::kSubtreeControl, needed);
      }
    }
  }

  static void apply_limits(const V2Dir& dir, const Limits& limits) {
    if (limits.memory_max) dir.write(v2file::kMemoryMax, std::to_string(*limits.memory_max));
    if (limits.cpu_weight) {
      cg_weight_to_shares(*limits.cpu_weight);  // validates the range
      dir.write(v2file::kCpuWeight, std::to_string(*limits.cpu_weight));
    }
    if (limits.pids_max) dir.write(v2file::kPidsMax, std::to_string(*limits.pids_max));
    if (limits.cpuset) dir.set_cpuset(*limits.cpuset);
  }

  // Removes what create() made, deepest first, except a partition folder (the reconciler owns it).
  void rollback(const std::vector<fs::path>& made, const fs::path& keep) const {
    for (auto it = made.rbegin(); it != made.rend(); ++it) {
      if (*it != keep) o_.ops.remove_dir(*it);
    }
  }

  V2Options o_;
  std::shared_ptr<const SupervisorFolders> supervisors_;
};

}  // namespace

std::unique_ptr<Backend> make_v2_backend(V2Options options) {
  return std::make_unique<V2Backend>(std::move(options));
}

}  // namespace runscope::cgroup
