#include "cpuset/topology.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include "common/error.hpp"
#include "common/file.hpp"

namespace runscope::cpuset {
namespace {

constexpr const char* kOnlineFile = "cpu/online";
constexpr const char* kSiblingsFile = "topology/thread_siblings_list";
constexpr const char* kPackageFile = "topology/physical_package_id";
constexpr const char* kNodeCpuList = "cpulist";

unsigned read_number(const std::filesystem::path& path) {
  std::string text = trim(read_file(path));
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size())
    throw Error(ErrorKind::system, path.string() + ": \"" + text + "\" is not a number");
  return value < 0 ? 0 : static_cast<unsigned>(value);  // -1 means "unknown" to the kernel
}

CpuSet read_list(const std::filesystem::path& path) {
  std::string text = read_file(path);
  try {
    return CpuSet::parse(text);
  } catch (const Error& e) {
    throw Error(ErrorKind::system, path.string() + ": " + e.what());
  }
}

// node/nodeN/cpulist for every node: the node of each CPU.
std::vector<std::pair<unsigned, CpuSet>> read_nodes(const std::filesystem::path& dir) {
  std::vector<std::pair<unsigned, CpuSet>> nodes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() <= 4 || name.compare(0, 4, "node") != 0) continue;
    unsigned id = 0;
    auto [ptr, err] = std::from_chars(name.data() + 4, name.data() + name.size(), id);
    if (err != std::errc() || ptr != name.data() + name.size()) continue;
    nodes.emplace_back(id, read_list(entry.path() / kNodeCpuList));
  }
  return nodes;
}

}  // namespace

Topology::Topology(std::vector<CpuInfo> cpus) : cpus_(std::move(cpus)) {
  std::sort(cpus_.begin(), cpus_.end(), [](const CpuInfo& a, const CpuInfo& b) { return a.id < b.id; });
  for (std::size_t i = 1; i < cpus_.size(); ++i)
    if (cpus_[i].id == cpus_[i - 1].id)
      throw Error(ErrorKind::invalid_argument, "topology lists CPU " + std::to_string(cpus_[i].id) + " twice");
}

Topology Topology::read(const std::filesystem::path& system) {
  CpuSet online = read_list(system / kOnlineFile);
  auto nodes = read_nodes(system / "node");
  std::vector<CpuInfo> cpus;
  for (unsigned id : online.cpus()) {
    auto dir = system / "cpu" / ("cpu" + std::to_string(id));
    CpuInfo info;
    info.id = id;
    info.package = read_number(dir / kPackageFile);
    info.siblings = (read_list(dir / kSiblingsFile) & online);
    info.siblings.add(id);
    for (const auto& [node, list] : nodes)
      if (list.contains(id)) info.node = node;
    cpus.push_back(std::move(info));
  }
  return Topology(std::move(cpus));
}

Topology Topology::synthetic(unsigned sockets, unsigned cores, unsigned threads, const CpuSet& online) {
  std::vector<CpuInfo> cpus;
  const unsigned per_thread = sockets * cores;
  for (unsigned s = 0; s < sockets; ++s)
    for (unsigned c = 0; c < cores; ++c) {
      CpuSet siblings;
      for (unsigned t = 0; t < threads; ++t) siblings.add(s * cores + c + t * per_thread);
      if (!online.empty()) siblings = siblings & online;
      for (unsigned id : siblings.cpus()) cpus.push_back(CpuInfo{id, s, s, siblings});
    }
  return Topology(std::move(cpus));
}

CpuSet Topology::online() const {
  CpuSet set;
  for (const auto& cpu : cpus_) set.add(cpu.id);
  return set;
}

const CpuInfo* Topology::find(unsigned cpu) const {
  auto it = std::lower_bound(cpus_.begin(), cpus_.end(), cpu,
                             [](const CpuInfo& info, unsigned id) { return info.id < id; });
  return it != cpus_.end() && it->id == cpu ? &*it : nullptr;
}

std::vector<CpuSet> Topology::cores() const {
  std::vector<CpuSet> out;
  for (const auto& cpu : cpus_)
    if (cpu.siblings.cpus().front() == cpu.id) out.push_back(cpu.siblings);
  return out;
}

}  // namespace runscope::cpuset
