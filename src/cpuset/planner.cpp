#include "cpuset/planner.hpp"

#include <algorithm>
#include <tuple>
#include <vector>

#include "common/error.hpp"

namespace runscope::cpuset {
namespace {

std::string cores_word(std::size_t n) { return std::to_string(n) + (n == 1 ? " core" : " cores"); }

}  // namespace

Planner::Planner(Topology topology, CpuSet reservable, CpuSet system_reserved, unsigned min_shared)
    : topology_(std::move(topology)),
      reservable_(std::move(reservable)),
      system_reserved_(std::move(system_reserved)),
      min_shared_(min_shared) {
  if (reservable_.empty()) throw Error(ErrorKind::config, "cpuset.reservable_cores: no CPUs to use");
  auto offline = reservable_ - topology_.online();
  if (!offline.empty())
    throw Error(ErrorKind::config, "cpuset.reservable_cores \"" + reservable_.to_string() +
                                       "\": CPUs " + offline.to_string() + " are not online");
  if (!system_reserved_.is_subset_of(reservable_))
    throw Error(ErrorKind::config, "cpuset.reserved_cores \"" + system_reserved_.to_string() +
                                       "\" is not inside cpuset.reservable_cores \"" +
                                       reservable_.to_string() + "\"");
  usable_ = reservable_ - system_reserved_;
  if (usable_.size() < min_shared_)
    throw Error(ErrorKind::config, "cpuset.min_shared_cores " + std::to_string(min_shared_) +
                                       " is more than the " + std::to_string(usable_.size()) +
                                       " CPUs cpuset.reservable_cores minus cpuset.reserved_cores leaves");
}

CpuSet Planner::shared_pool() const {
  CpuSet pool = usable_;
  for (const auto& [task, cpus] : reservations_) pool -= cpus;
  return pool;
}

unsigned Planner::available() const {
  auto pool = static_cast<unsigned>(shared_pool().size());
  return pool > kept_shared() ? pool - kept_shared() : 0;
}

// min_shared_cores stay shared whether or not shared tasks run now (a member's reservation may not
// leave root's next shared task without a CPU); with min_shared_cores = 0, one CPU still stays
// while shared tasks run: they cannot be left with none.
unsigned Planner::kept_shared() const { return std::max(min_shared_, shared_tasks_ > 0 ? 1u : 0u); }

CpuSet Planner::reserve(const TaskId& task, unsigned count) {
  if (count == 0) throw Error(ErrorKind::invalid_argument, "cannot reserve 0 cores for " + task.display());
  if (reservations_.count(task))
    throw Error(ErrorKind::conflict, task.display() + " already holds cores " +
                                         reservations_.at(task).to_string());
  CpuSet pool = shared_pool();
  unsigned free = available();
  if (count > free) {
    std::string why = "cannot reserve " + cores_word(count) + " for " + task.display() + ": " +
                      std::to_string(free) + " free";
    if (kept_shared() > 0 && count <= pool.size())
      why += " (" + std::to_string(pool.size()) + " in the shared pool, of which " + std::to_string(kept_shared()) +
             " always stay shared: min_shared_cores = " + std::to_string(min_shared_) + ", " +
             std::to_string(shared_tasks_) + " shared tasks running)";
    throw Error(ErrorKind::resources, why);
  }
  CpuSet chosen = choose(pool, count);
  reservations_.emplace(task, chosen);
  return chosen;
}

void Planner::restore(const TaskId& task, const CpuSet& cpus) {
  if (cpus.empty() || reservations_.count(task) || !cpus.is_subset_of(shared_pool()))
    throw Error(ErrorKind::conflict, "cannot restore the reservation of " + task.display() + " on CPUs \"" +
                                         cpus.to_string() + "\": they are not free (free: \"" +
                                         shared_pool().to_string() + "\")");
  reservations_.emplace(task, cpus);
}

bool Planner::release(const TaskId& task) { return reservations_.erase(task) > 0; }

void Planner::add_shared_task() {
  auto pool = shared_pool().size();
  if (pool < std::max(min_shared_, 1u))
    throw Error(ErrorKind::resources, "cannot start a shared task: the shared pool has " +
                                          std::to_string(pool) + " CPUs, min_shared_cores is " +
                                          std::to_string(min_shared_));
  ++shared_tasks_;
}

void Planner::remove_shared_task() {
  if (shared_tasks_ > 0) --shared_tasks_;
}

DesiredState Planner::desired() const { return DesiredState{shared_pool(), usable_, reservations_}; }

CpuSet Planner::usable_core(unsigned cpu) const {
  const CpuInfo* info = topology_.find(cpu);
  CpuSet core = info ? info->siblings & usable_ : CpuSet();
  core.add(cpu);
  return core;
}

// Picks a locality domain (NUMA node x package) for the whole reservation: first one that fits it
// in whole free cores, else one that fits it at all, the tightest fit first so large free domains
// stay whole for large requests. Only if no domain fits does the reservation spread.
CpuSet Planner::choose(const CpuSet& free, unsigned count) const {
  std::map<std::pair<unsigned, unsigned>, CpuSet> domains;
  for (unsigned cpu : free.cpus()) {
    const CpuInfo* info = topology_.find(cpu);
    domains[info ? std::pair{info->node, info->package} : std::pair{0u, 0u}].add(cpu);
  }
  auto whole_capacity = [&](const CpuSet& domain) {
    std::size_t n = 0;
    for (unsigned cpu : domain.cpus())
      if (usable_core(cpu).is_subset_of(free)) ++n;
    return n;
  };
  const CpuSet* best = nullptr;
  std::tuple<bool, std::size_t> best_rank{};
  for (const auto& [key, domain] : domains) {
    if (domain.size() < count) continue;
    std::tuple<bool, std::size_t> rank{whole_capacity(domain) < count, domain.size()};
    if (!best || rank < best_rank) best = &domain, best_rank = rank;
  }
  if (best) return take(*best, free, count);
  std::vector<const CpuSet*> order;
  for (const auto& [key, domain] : domains) order.push_back(&domain);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->size() > b->size(); });
  CpuSet chosen;
  for (const CpuSet* domain : order) {
    unsigned want = count - static_cast<unsigned>(chosen.size());
    if (want == 0) break;
    chosen |= take(*domain, free, std::min<unsigned>(want, static_cast<unsigned>(domain->size())));
  }
  return chosen;
}

// Within one domain: whole free cores while they fit, then threads of cores already split by
// other reservations, and only then a thread of a whole core.
CpuSet Planner::take(const CpuSet& from, const CpuSet& free, unsigned count) const {
  std::vector<CpuSet> whole, partial;
  CpuSet seen;
  for (unsigned cpu : from.cpus()) {
    if (seen.contains(cpu)) continue;
    CpuSet core = usable_core(cpu);
    seen |= core;
    (core.is_subset_of(free) ? whole : partial).push_back(core & from);
  }
  CpuSet chosen;
  unsigned left = count;
  std::vector<CpuSet> unused;
  for (const auto& core : whole) {
    if (core.size() <= left) {
      chosen |= core;
      left -= static_cast<unsigned>(core.size());
    } else {
      unused.push_back(core);
    }
  }
  for (const auto* group : {&partial, &unused})
    for (const auto& core : *group)
      for (unsigned cpu : core.cpus()) {
        if (left == 0) return chosen;
        chosen.add(cpu);
        --left;
      }
  return chosen;
}

Planner make_planner(const config::CpusetConfig& config, Topology topology) {
  CpuSet reservable = config.reservable_cores ? *config.reservable_cores : topology.online();
  return Planner(std::move(topology), std::move(reservable), config.reserved_cores, config.min_shared_cores);
}

}  // namespace runscope::cpuset
