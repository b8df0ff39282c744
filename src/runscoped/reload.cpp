#include "runscoped/reload.hpp"

#include <exception>

namespace runscope::runscoped {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

std::string ReloadOutcome::summary() const {
  if (!applied) return "reload refused, running configuration kept: " + refused;
  std::string line = changed.empty() ? "reloaded, nothing live changed" : "reloaded " + joined(changed);
  if (!needs_restart.empty()) line += "; " + joined(needs_restart) + " changed, takes effect after a restart";
  return line;
}

ReloadOutcome apply_reload(const config::Config& next, config::Config& current, const ReloadTargets& targets) {
  ReloadOutcome out;
  bool cpuset_changed = !(next.cpuset == current.cpuset);
  // The steps that can refuse go first, so a refusal leaves everything as it was.
  std::shared_ptr<const quota::Quotas> quotas;
  if (!(next.limits == current.limits)) {
    try {
      quotas = std::make_shared<const quota::Quotas>(next.limits, *targets.ids);
    } catch (const std::exception& e) {
      out.refused = std::string("[limits]: ") + e.what();
      return out;
    }
  }
  if (cpuset_changed && targets.cpusets) {
    try {
      targets.cpusets->replan(next.cpuset);
    } catch (const std::exception& e) {
      out.refused = std::string("[cpuset] in ") + next.source.string() + ": " + e.what();
      return out;
    }
  }
  out.applied = true;
  if (cpuset_changed) {
    current.cpuset = next.cpuset;
    out.changed.push_back(targets.cpusets ? "[cpuset]" : "[cpuset] (unused: cpusets are off on this host)");
  }
  if (!(next.task == current.task)) {
    if (targets.set_task_policy) targets.set_task_policy(next.task);
    current.task = next.task;
    out.changed.push_back("[task]");
  }
  if (quotas) {
    if (targets.set_quotas) targets.set_quotas(quotas);
    current.limits = next.limits;
    out.changed.push_back("[limits]");
  }
  if (next.daemon.log_level != current.daemon.log_level) {
    if (targets.set_log_level) targets.set_log_level(next.daemon.log_level);
    current.daemon.log_level = next.daemon.log_level;
    out.changed.push_back("log_level");
  }
  if (!(next.cgroups == current.cgroups)) out.needs_restart.push_back("[cgroups]");
  if (next.daemon.state_dir != current.daemon.state_dir) out.needs_restart.push_back("daemon.state_dir");
  return out;
}

}  // namespace runscope::runscoped
