#include "wiring/backend_factory.hpp"

#include "cgroup/v1_backend.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/error.hpp"
#include "systemd/factory.hpp"

namespace runscope::wiring {
namespace {

using driver::ManagerDecision;
using driver::ManagerKind;

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
  options.parent = driver::v2_parent(config::parent_for(config.cgroups, true), env.own);
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

bool systemd_answers() { return systemd::probe_systemd_version().has_value(); }

std::unique_ptr<ManagedBackend> make_backend(const config::Config& config, const ManagerDecision& decision,
                                             const BackendEnv& env) {
  if (decision.kind == ManagerKind::systemd) return make_systemd(config, decision, env);
  if (decision.version == cgroup::Version::v2) return make_v2(config, decision, env);
  return make_v1(config, decision, env);
}

}  // namespace runscope::wiring
