#include "systemd/scope_backend.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "cgroup/v2_dir.hpp"
#include "common/fd.hpp"
#include "common/file.hpp"
#include "systemd/properties.hpp"

namespace runscope::systemd {
namespace {

constexpr const char* kScopeInterface = "org.freedesktop.systemd1.Scope";
constexpr const char* kScopeSuffix = ".scope";
constexpr int kMaxStartAttempts = 3;  // once with PIDFDs, once with PIDs, once after reset-failed

UniqueFd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
  (void)pid;
  return UniqueFd();
#endif
}

// Every process of a scope, including sub-folders a delegated task made for itself.
void collect_pids(const cgroup::V2Dir& dir, std::vector<pid_t>& out) {
  const auto here = dir.pids();
  out.insert(out.end(), here.begin(), here.end());
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir.path(), ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    try {
      collect_pids(cgroup::V2Dir::open(it->path()), out);
    } catch (const Error&) {
      // Removed while we looked: nothing left in it.
    }
  }
}

class ScopeCgroup final : public cgroup::TaskCgroup {
 public:
  ScopeCgroup(SystemdBackend& backend, TaskId id, cgroup::Limits limits)
      : backend_(backend),
        id_(std::move(id)),
        label_(id_->display()),
        limits_(std::move(limits)),
        unit_(id_->unit_name()),
        slice_(slice_for(backend.options().parent_slice, limits_.partition)) {
    if (auto* home = backend.supervisors()) shim_.emplace(*home, id_->cgroup_name());
  }

  // A running scope an earlier daemon made (SystemdBackend::adopt): already placed. The task's
  // identity stays with the caller; messages name the unit.
  ScopeCgroup(SystemdBackend& backend, std::string unit, std::string slice, std::string control_group,
              cgroup::V2Dir dir)
      : backend_(backend),
        label_(unit),
        unit_(std::move(unit)),
        slice_(std::move(slice)),
        control_group_(std::move(control_group)),
        dir_(std::move(dir)),
        placed_(true) {
    if (auto* home = backend.supervisors())
      shim_.emplace(*home, unit_.substr(0, unit_.size() - std::string_view(kScopeSuffix).size()));
  }

  ~ScopeCgroup() override {
    try {
      destroy(Deadline(backend_.clock(), backend_.options().destroy_timeout));
    } catch (...) {
      // Best effort: the destructor must not throw; destroy() already tried everything.
    }
  }

  void place(pid_t pid) override;
  bool places_asynchronously() const override { return true; }
  void begin_place(pid_t pid, std::function<void(std::exception_ptr)> sent) override;
  void finish_place(pid_t pid) override;
  std::vector<pid_t> pids() const override;
  bool populated() const override { return dir_ && dir_->populated(); }
  void kill_all(const Deadline& deadline, cgroup::KillMethod method) override {
    if (dir_) dir_->kill_all(deadline, method);
  }
  void destroy(const Deadline& deadline) override;
  void set_cpuset(const CpuSet& cpus) override;
  cgroup::Stats stats() const override { return dir_ ? dir_->stats() : cgroup::Stats{}; }
  cgroup::Folders folders() const override { return dir_ ? cgroup::Folders{dir_->path(), {}} : cgroup::Folders{}; }
  std::string location() const override { return slice_ + "/" + unit_; }
  cgroup::SupervisorHome* supervisor_home() const override { return shim_ ? &*shim_ : nullptr; }
  void disown() noexcept override { destroyed_ = disowned_ = true; }

 private:
  void start_scope(pid_t pid);
  void locate(pid_t pid);
  void make_room_for_stale_unit();
  bool stale_unit_empty() const;
  void check_membership(pid_t pid) const;
  void clean_up_failed_start() noexcept;

  SystemdBackend& backend_;
  std::optional<TaskId> id_;  // empty for an adopted scope, which is never started again
  std::string label_;         // who, in messages
  cgroup::Limits limits_;
  std::string unit_;
  std::string slice_;
  std::string control_group_;
  std::optional<cgroup::V2Dir> dir_;  // the scope's own cgroup folder, once placed
  bool placed_ = false;
  bool destroyed_ = false;
  bool name_taken_ = false;  // the name belongs to a unit that is not ours: never stop or reset it
  bool disowned_ = false;
  mutable std::optional<ShimCgroup> shim_;  // where the task's shim runs (handed out by a const getter)
};

void ScopeCgroup::place(pid_t pid) {
  if (placed_ || destroyed_) throw Error(ErrorKind::conflict, unit_ + ": place() called twice");
  try {
    start_scope(pid);
    locate(pid);
  } catch (...) {
    clean_up_failed_start();
    throw;
  }
}

// The scope's StartTransientUnit and its job are events on the manager's connection: no thread
// waits for systemd. Until PIDFDs support is known (the first start), the blocking path probes it.
void ScopeCgroup::begin_place(pid_t pid, std::function<void(std::exception_ptr)> sent) {
  if (placed_ || destroyed_) throw Error(ErrorKind::conflict, unit_ + ": place() called twice");
  if (backend_.pidfd_support() == SystemdBackend::PidfdSupport::unknown) {
    place(pid);
    sent(nullptr);
    return;
  }
  UniqueFd pidfd = backend_.pidfds_refused() ? UniqueFd() : open_pidfd(pid);
  auto props = scope_properties(*id_, limits_, slice_, pid, pidfd ? std::optional<int>(pidfd.get()) : std::nullopt);
  backend_.manager().start_transient_unit_async(unit_, props, std::move(sent));  // the pidfd is copied into the call
}

void ScopeCgroup::finish_place(pid_t pid) {
  if (placed_) return;  // placed by the blocking path already
  try {
    locate(pid);
  } catch (...) {
    clean_up_failed_start();
    throw;
  }
}

// The scope exists with `pid` in it: where its cgroup is, checked against /proc.
void ScopeCgroup::locate(pid_t pid) {
  placed_ = true;
  // The held child cannot have moved itself: if it sits in "<...>/<slice>/<unit>", that folder
  // is the scope's (systemd names them so). Else systemd knows best.
  const auto actual = unified_cgroup_of(backend_.options().proc_root, pid);
  control_group_ = actual.ends_with("/" + slice_ + "/" + unit_) ? actual : backend_.manager().control_group(unit_);
  if (control_group_.empty()) throw Error(ErrorKind::bus, unit_ + ": systemd reports no ControlGroup");
  check_membership(pid);
  dir_ = cgroup::V2Dir::open(backend_.options().cgroup_root / std::filesystem::path(control_group_).relative_path());
}

void ScopeCgroup::start_scope(pid_t pid) {
  using Support = SystemdBackend::PidfdSupport;
  std::unique_lock<std::mutex> probing;
  if (backend_.pidfd_support() == Support::unknown) {
    probing = std::unique_lock(backend_.pidfd_probe_mutex());
    if (backend_.pidfd_support() != Support::unknown) probing.unlock();  // learned while we waited
  }
  UniqueFd pidfd = backend_.pidfds_refused() ? UniqueFd() : open_pidfd(pid);
  if (probing && !pidfd) backend_.note_pidfd_support(Support::refused);  // no pidfd_open here
  auto props = scope_properties(*id_, limits_, slice_, pid,  // set: adopted scopes are placed already
                                pidfd ? std::optional<int>(pidfd.get()) : std::nullopt);
  bool reset_done = false;
  for (int attempt = 1;; ++attempt) {
    try {
      backend_.manager().start_transient_unit(unit_, props);
      if (probing && pidfd) backend_.note_pidfd_support(Support::supported);
      return;
    } catch (const BusError& e) {
      const bool refused = e.is(kUnknownProperty) || e.is(kPropertyReadOnly);
      if (attempt < kMaxStartAttempts && refused && find_property(props, "PIDFDs")) {
        // systemd before 253 does not know PIDFDs; systemd-run falls back the same way.
        backend_.note_pidfd_support(Support::refused);
        if (probing) probing.unlock();
        props = scope_properties(*id_, limits_, slice_, pid, std::nullopt);
      } else if (attempt < kMaxStartAttempts && e.is(kUnitExists) && !reset_done) {
        make_room_for_stale_unit();
        reset_done = true;
      } else {
        name_taken_ = e.is(kUnitExists);
        throw BusError(e.name(), "systemd did not start scope " + unit_ + " for task " + label_ + ": " +
                                     e.what() + " (" + e.name() + ")", e.kind());
      }
    }
  }
}

// Only our own dead scope is cleared out of the way; anything else keeps its name. A scope of
// ours that is still active with nothing in it counts as dead: an earlier `runscope exec` of the
// same name sent its stop and returned before systemd removed it (await_stop off).
void ScopeCgroup::make_room_for_stale_unit() {
  auto& manager = backend_.manager();
  auto status = manager.unit_status(unit_);
  if (!status) return;  // collected meanwhile
  const auto state = status->active_state;
  std::string slice;
  try {
    slice = std::get<std::string>(manager.get_unit_property(unit_, kScopeInterface, "Slice"));
  } catch (const std::exception&) {
    // Unreadable: treated as not ours below.
  }
  const auto ours = backend_.our_slices();
  const bool is_ours = std::find(ours.begin(), ours.end(), slice) != ours.end();
  const bool dead = state == "failed" || state == "inactive";
  if (!is_ours || (!dead && !stale_unit_empty())) {
    name_taken_ = true;
    throw Error(ErrorKind::conflict, "systemd unit " + unit_ + " already exists (state " + state + ", slice " +
                                         (slice.empty() ? "unknown" : slice) +
                                         ") and is not a dead runscope scope; not reusing it");
  }
  if (!dead) manager.stop_unit(unit_);  // empty: the stop job has nothing to kill
  manager.reset_failed_unit(unit_);
}

// Whether the unit holding our name has no process left in its cgroup (or no cgroup at all).
bool ScopeCgroup::stale_unit_empty() const {
  std::string control_group;
  try {
    control_group = backend_.manager().control_group(unit_);
  } catch (const BusError& e) {
    if (e.is(kNoSuchUnit)) return true;  // collected meanwhile
    throw;
  }
  if (control_group.empty()) return true;
  try {
    return !cgroup::V2Dir::open(backend_.options().cgroup_root / std::filesystem::path(control_group).relative_path())
                .populated();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::not_found) return true;  // its folder is gone
    throw;
  }
}

void ScopeCgroup::check_membership(pid_t pid) const {
  const auto actual = unified_cgroup_of(backend_.options().proc_root, pid);
  if (actual != control_group_)
    throw Error(ErrorKind::conflict, "task " + label_ + " (pid " + std::to_string(pid) + ") is in cgroup '" +
                                         actual + "', not in its scope's '" + control_group_ + "'");
}

void ScopeCgroup::clean_up_failed_start() noexcept {
  placed_ = false;
  destroyed_ = true;
  dir_.reset();
  if (name_taken_) return;
  try {
    backend_.manager().stop_unit(unit_);
  } catch (...) {
  }
  try {
    backend_.manager().reset_failed_unit(unit_);
  } catch (...) {
  }
}

void ScopeCgroup::destroy(const Deadline& deadline) {
  if (disowned_) return;  // the task and its shim run on, for the next daemon
  if (!destroyed_ && placed_) {
    // Nothing can join an empty scope but by an outside write to cgroup.procs; the stop job kills
    // whatever that brought. (Waiting instead for systemd to stop an emptied scope by itself was
    // measured: it handles empty cgroups late, about 30 ms later under load than one StopUnit.)
    // A stop that ended "done" leaves the unit inactive, not failed, and
    // CollectMode=inactive-or-failed collects it: no ResetFailedUnit.
    if (dir_ && dir_->populated()) dir_->kill_all(deadline, cgroup::KillMethod::automatic);
    const bool empty = !dir_ || !dir_->populated();
    if (empty && !backend_.options().await_stop) {
      backend_.manager().send_stop_unit(unit_);
    } else {
      backend_.manager().stop_unit(unit_);
    }
  }
  destroyed_ = true;
  // Also after a failed start (destroyed_ already set): the shim's cgroup goes with its task.
  if (shim_) shim_->remove(deadline);
}

std::vector<pid_t> ScopeCgroup::pids() const {
  std::vector<pid_t> out;
  if (!dir_) return out;
  collect_pids(*dir_, out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void ScopeCgroup::set_cpuset(const CpuSet& cpus) {
  auto prop = allowed_cpus_property(cpus);  // throws on an empty set before anything changes
  if (placed_) backend_.manager().set_unit_properties(unit_, true, {prop});
  limits_.cpuset = cpus;
}

}  // namespace

std::string unified_cgroup_of(const std::filesystem::path& proc_root, pid_t pid) {
  std::istringstream in(read_file(proc_root / std::to_string(pid) / "cgroup"));
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("0::")) return line.substr(3);
  return "";
}

SystemdBackend::SystemdBackend(SystemdManager& manager, SystemdBackendOptions options)
    : manager_(manager), options_(std::move(options)), clock_(options_.clock ? *options_.clock : system_clock()) {
  slice_for(options_.parent_slice, cgroup::CpuPartition::none);  // validates the name now
  if (!options_.supervisor_anchor.empty())
    supervisors_ = std::make_unique<SupervisorsScope>(*this, options_.supervisor_anchor);
}

SystemdBackend::SystemdBackend(std::unique_ptr<SystemdManager> manager, SystemdBackendOptions options)
    : owned_manager_(std::move(manager)),
      manager_(*owned_manager_),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : system_clock()) {
  slice_for(options_.parent_slice, cgroup::CpuPartition::none);
  if (!options_.supervisor_anchor.empty())
    supervisors_ = std::make_unique<SupervisorsScope>(*this, options_.supervisor_anchor);
}

void SystemdBackend::remove_stray_supervisors(const std::set<std::string>& running) {
  if (supervisors_) supervisors_->remove_strays(running);
}

std::unique_ptr<cgroup::TaskCgroup> SystemdBackend::create(const TaskId& id, const cgroup::Limits& limits) {
  if (limits.cpuset && limits.cpuset->empty())
    throw Error(ErrorKind::invalid_argument, "task " + id.display() + ": empty cpuset");
  return std::make_unique<ScopeCgroup>(*this, id, limits);
}

std::string SystemdBackend::slice_property(const std::string& unit) const {
  try {
    return std::get<std::string>(manager_.get_unit_property(unit, kScopeInterface, "Slice"));
  } catch (const BusError& e) {
    if (e.is(kNoSuchUnit)) throw Error(ErrorKind::not_found, "no scope " + unit);
    throw;
  }
}

std::unique_ptr<cgroup::TaskCgroup> SystemdBackend::adopt(const std::string& cgroup_name,
                                                          cgroup::CpuPartition partition) {
  if (cgroup_name.empty() || cgroup_name.find('/') != std::string::npos)
    throw Error(ErrorKind::invalid_argument, "cgroup name '" + cgroup_name + "' can't name a scope");
  const std::string unit = cgroup_name + kScopeSuffix;
  auto status = manager_.unit_status(unit);
  if (!status || status->load_state != "loaded") throw Error(ErrorKind::not_found, "no scope " + unit);
  const auto ours = our_slices();
  auto is_ours = [&](const std::string& slice) { return std::find(ours.begin(), ours.end(), slice) != ours.end(); };
  auto refuse = [&](const std::string& slice) {
    return Error(ErrorKind::conflict, "scope " + unit + " is in slice '" + slice + "', not runscope's " +
                                          slice_for(options_.parent_slice, partition) + "; not adopting it");
  };
  if (status->active_state == "inactive" || status->active_state == "failed") {
    if (is_ours(slice_property(unit))) manager_.reset_failed_unit(unit);  // a dead scope only holds the name
    throw Error(ErrorKind::not_found, "scope " + unit + " has ended (" + status->active_state + ")");
  }
  auto control_group = manager_.control_group(unit);
  if (control_group.empty()) throw Error(ErrorKind::not_found, "scope " + unit + " has no cgroup left");
  // Where its cgroup is, not its Slice property: after a daemon-reload (a package upgrade does
  // one) systemd 252 reports a transient scope's Slice as system.slice, while the scope's cgroup
  // and processes stay under our slice (seen in tests/e2e).
  const std::string slice = std::filesystem::path(control_group).parent_path().filename().string();
  if (!is_ours(slice)) throw refuse(slice);
  // V2Dir::open throws not_found when the folder went away meanwhile.
  auto dir = cgroup::V2Dir::open(options_.cgroup_root / std::filesystem::path(control_group).relative_path());
  return std::make_unique<ScopeCgroup>(*this, unit, slice, control_group, std::move(dir));
}

std::vector<std::pair<std::string, cgroup::CpuPartition>> SystemdBackend::existing() const {
  std::vector<std::pair<std::string, cgroup::CpuPartition>> out;
  for (const auto& scope : find_scopes()) {
    if (!scope.unit.ends_with(kScopeSuffix)) continue;
    auto partition = cgroup::CpuPartition::none;
    for (auto p : {cgroup::CpuPartition::shared, cgroup::CpuPartition::reserved})
      if (scope.slice == slice_for(options_.parent_slice, p)) partition = p;
    out.emplace_back(scope.unit.substr(0, scope.unit.size() - std::string_view(kScopeSuffix).size()), partition);
  }
  return out;
}

std::vector<std::string> SystemdBackend::our_slices() const {
  const auto& parent = options_.parent_slice;
  return {parent, slice_for(parent, cgroup::CpuPartition::shared), slice_for(parent, cgroup::CpuPartition::reserved)};
}

std::vector<FoundScope> SystemdBackend::find_scopes() const {
  const auto ours = our_slices();
  std::vector<FoundScope> found;
  for (const auto& unit : manager_.list_units_by_patterns({}, {"*.scope"})) {
    try {
      // By its cgroup while it has one (see adopt(): the Slice property can be wrong after a
      // daemon-reload), else by the Slice property.
      auto control_group = manager_.control_group(unit.name);
      auto slice = control_group.empty() ? slice_property(unit.name)
                                         : std::filesystem::path(control_group).parent_path().filename().string();
      if (std::find(ours.begin(), ours.end(), slice) == ours.end()) continue;
      found.push_back({unit.name, slice, unit.active_state, control_group});
    } catch (const BusError& e) {
      if (!e.is(kNoSuchUnit)) throw;  // collected between the listing and the question
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::not_found) throw;  // the same, seen by slice_property()
    }
  }
  return found;
}

}  // namespace runscope::systemd
