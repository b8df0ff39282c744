#include "cgroup/folders.hpp"

#include <algorithm>
#include <optional>

#include "cgroup/v1_task.hpp"
#include "cgroup/v2_dir.hpp"
#include "common/error.hpp"

namespace runscope::cgroup {
namespace {

namespace fs = std::filesystem;

std::optional<V2Dir> open_if_there(const fs::path& path) {
  try {
    return V2Dir::open(path);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::not_found) return std::nullopt;
    throw;
  }
}

void collect(const V2Dir& dir, std::vector<pid_t>& out) {
  auto here = dir.pids();
  out.insert(out.end(), here.begin(), here.end());
  std::error_code ec;
  for (fs::directory_iterator it(dir.path(), ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    if (auto sub = open_if_there(it->path())) collect(*sub, out);
  }
}

}  // namespace

Stats read_stats(const Folders& where) {
  if (!where.unified.empty()) {
    auto dir = open_if_there(where.unified);
    if (!dir) throw Error(ErrorKind::not_found, "cgroup " + where.unified.string() + " is gone");
    return dir->stats();
  }
  auto open_for = [&](const char* controller) {
    auto it = where.v1.find(controller);
    return it == where.v1.end() ? std::nullopt : open_if_there(it->second);
  };
  auto cpuacct = open_for("cpuacct");
  auto memory = open_for("memory");
  auto pids = open_for("pids");
  if (!cpuacct && !memory && !pids) throw Error(ErrorKind::not_found, "the task's cgroup folders are gone");
  return v1_stats(cpuacct ? &*cpuacct : nullptr, memory ? &*memory : nullptr, pids ? &*pids : nullptr);
}

std::vector<pid_t> read_pids(const Folders& where) {
  std::vector<pid_t> out;
  if (!where.unified.empty()) {
    if (auto dir = open_if_there(where.unified)) collect(*dir, out);
  }
  std::vector<fs::path> seen;
  for (const auto& [controller, folder] : where.v1) {
    if (std::find(seen.begin(), seen.end(), folder) != seen.end()) continue;  // co-mounted
    seen.push_back(folder);
    if (auto dir = open_if_there(folder)) {
      auto here = dir->pids();
      out.insert(out.end(), here.begin(), here.end());
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace runscope::cgroup
