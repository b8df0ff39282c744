#include "driver/backend_factory.hpp"

#include <sstream>
#include <vector>

#include "cgroup/v1_backend.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "common/file.hpp"
#include "systemd/factory.hpp"

namespace runscope::driver {
namespace {

constexpr int kMountPointField = 5;  // mountinfo: id, parent, dev, root, MOUNT POINT, ...

std::string mode_name(const cgroup::HostLayout& layout) { return std::string(cgroup::to_string(layout.mode)); }

class SimpleBackend final : public ManagedBackend {
 public:
  SimpleBackend(std::unique_ptr<cgroup::Backend> backend, ManagerDecision decision)
      : backend_(std::move(backend)), decision_(decision) {}
  cgroup::Backend& backend() override { return *backend_; }
  ManagerDecision decision() const override { return decision_; }

 private:
  std::unique_ptr<cgroup::Backend> backend_;
  ManagerDecision decision_;
};

// The systemd backend, whose one bus connection the cpuset applier shares.
class SystemdManagedBackend final : public ManagedBackend {
 public:
  SystemdManagedBackend(std::unique_ptr<systemd::SystemdBackend> backend, ManagerDecision decision)
      : backend_(std::move(backend)), decision_(decision) {}
  cgroup::Backend& backend() override { return *backend_; }
  ManagerDecision decision() const override { return decision_; }
  systemd::SystemdManager* systemd_manager() override { return &backend_->manager(); }

 private:
  std::unique_ptr<systemd::SystemdBackend> backend_;
  ManagerDecision decision_;
};

std::unique_ptr<ManagedBackend> make_v2(const config::Config& config, const ManagerDecision& decision,
                                        const BackendEnv& env) {
  if (env.layout.unified_mount.empty()) {
    throw Error(ErrorKind::unsupported, "no cgroup2 hierarchy is mounted on this " + mode_name(env.layout) + " host");
  }
  cgroup::V2Options options;
  options.root = env.layout.unified_mount;
  options.parent = v2_parent(config::parent_for(config.cgroups, true), env.own);
  options.clock = env.clock;
  return std::make_unique<SimpleBackend>(cgroup::make_v2_backend(std::move(options)), decision);
}

std::unique_ptr<ManagedBackend> make_v1(const config::Config& config, const ManagerDecision& decision,
                                        const BackendEnv& env) {
  cgroup::V1Options options;
  options.layout = env.layout;
  options.own = env.own;
  options.parent = config::parent_for(config.cgroups, false);
  options.clock = env.clock;
  return std::make_unique<SimpleBackend>(cgroup::make_v1_backend(std::move(options)), decision);
}

std::unique_ptr<ManagedBackend> make_systemd(const config::Config& config, const ManagerDecision& decision,
                                             const BackendEnv&) {
  // The backend owns its one bus connection; it throws BusError when systemd does not answer.
  return std::make_unique<SystemdManagedBackend>(systemd::make_systemd_backend(config.cgroups), decision);
}

}  // namespace

std::string drop_shadowed_mounts(std::string_view mountinfo) {
  std::vector<std::string> lines, points;
  std::istringstream in{std::string(mountinfo)};
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string field, point;
    for (int i = 0; i < kMountPointField && fields >> field; ++i) point = field;
    lines.push_back(line);
    points.push_back(point);
  }
  auto hides = [](const std::string& later, const std::string& earlier) {
    if (later.empty() || later == "/") return false;  // never let a late "/" entry hide everything
    return earlier == later || earlier.starts_with(later + "/");
  };
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    bool hidden = false;
    for (std::size_t j = i + 1; j < lines.size() && !hidden; ++j) hidden = hides(points[j], points[i]);
    if (!hidden) out += lines[i] + "\n";
  }
  return out;
}

cgroup::HostLayout detect_layout(const std::filesystem::path& mountinfo) {
  return cgroup::parse_mountinfo(drop_shadowed_mounts(read_file(mountinfo)));
}

std::string_view to_string(ManagerKind kind) { return kind == ManagerKind::systemd ? "systemd" : "cgroupfs"; }

ManagerDecision choose_manager(const ManagerQuery& query, const cgroup::HostLayout& layout,
                               const std::function<bool()>& systemd_running) {
  const bool unified = layout.mode == cgroup::Mode::unified;
  if (query.force_v2) {
    if (query.choice == config::ManagerChoice::systemd) {
      throw Error(ErrorKind::invalid_argument, "the forced cgroup v2 cgroupfs backend cannot be combined with "
                                               "manager 'systemd'");
    }
    if (layout.unified_mount.empty()) {
      throw Error(ErrorKind::unsupported, "cannot force the cgroup v2 backend: this " + mode_name(layout) +
                                              " host has no cgroup2 mount");
    }
    return {ManagerKind::cgroupfs, cgroup::Version::v2};
  }
  switch (query.choice) {
    case config::ManagerChoice::cgroupfs:
      return {ManagerKind::cgroupfs, layout.version()};
    case config::ManagerChoice::systemd:
      if (!unified) {
        throw Error(ErrorKind::unsupported, "manager 'systemd' needs a unified (cgroup v2) host; this host is " +
                                                mode_name(layout) + ", use manager 'cgroupfs' or 'auto'");
      }
      if (!systemd_running()) {
        throw Error(ErrorKind::unsupported, "manager 'systemd' was asked for, but systemd is not running on this host");
      }
      return {ManagerKind::systemd, cgroup::Version::v2};
    case config::ManagerChoice::automatic:
      break;
  }
  if (unified && systemd_running()) return {ManagerKind::systemd, cgroup::Version::v2};
  return {ManagerKind::cgroupfs, layout.version()};
}

bool systemd_answers() { return systemd::probe_systemd_version().has_value(); }

std::filesystem::path v2_parent(const std::string& parent, const cgroup::CgroupPaths& own) {
  if (!parent.empty() && parent.front() == '/') return std::filesystem::path(parent).relative_path();
  auto it = own.find(cgroup::kUnifiedKey);
  std::filesystem::path base = it != own.end() ? std::filesystem::path(it->second).relative_path() : "";
  return base / parent;
}

std::unique_ptr<ManagedBackend> make_backend(const config::Config& config, const ManagerDecision& decision,
                                             const BackendEnv& env) {
  if (decision.kind == ManagerKind::systemd) return make_systemd(config, decision, env);
  if (decision.version == cgroup::Version::v2) return make_v2(config, decision, env);
  return make_v1(config, decision, env);
}

}  // namespace runscope::driver
