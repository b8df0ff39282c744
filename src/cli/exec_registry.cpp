#include "cli/exec_registry.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.hpp"
#include "common/file.hpp"
#include "driver/shim_protocol.hpp"

namespace runscope::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kDefaultDir = "/run/runscope/exec";
constexpr const char* kDirEnv = "RUNSCOPE_EXEC_DIR";
constexpr const char* kSuffix = ".json";

fs::path entry_path(const fs::path& dir, const std::string& cgroup_name) {
  return dir / (cgroup_name + kSuffix);
}

bool still_linked(int fd) {
  struct stat st{};
  return ::fstat(fd, &st) == 0 && st.st_nlink > 0;
}

std::string owner_of(const fs::path& path) {
  try {
    auto entry = parse_exec_entry(read_file(path));
    return "runscope pid " + std::to_string(entry.runscope_pid);
  } catch (const std::exception&) {
    return "another runscope";
  }
}

}  // namespace

fs::path registry_dir() {
  const char* dir = std::getenv(kDirEnv);
  return dir != nullptr && *dir != '\0' ? fs::path(dir) : fs::path(kDefaultDir);
}

std::string to_json_text(const ExecEntry& e) {
  return json{{"alloc", e.alloc},
              {"task", e.task},
              {"cgroup_name", e.cgroup_name},
              {"manager", e.manager},
              {"version", e.version},
              {"parent", e.parent},
              {"own", e.own},
              {"location", e.location},
              {"runscope_pid", e.runscope_pid},
              {"main_pid", e.main_pid},
              {"main_start_time", e.main_start_time},
              {"started_at", e.started_at}}
             .dump(2) +
         "\n";
}

ExecEntry parse_exec_entry(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::invalid_argument, "not a JSON object");
  try {
    ExecEntry e;
    e.alloc = j.at("alloc").get<std::string>();
    e.task = j.at("task").get<std::string>();
    e.cgroup_name = j.at("cgroup_name").get<std::string>();
    e.manager = j.at("manager").get<std::string>();
    e.version = j.at("version").get<std::string>();
    e.parent = j.at("parent").get<std::string>();
    e.own = j.at("own").get<std::map<std::string, std::string>>();
    e.location = j.at("location").get<std::string>();
    e.runscope_pid = j.at("runscope_pid").get<pid_t>();
    e.main_pid = j.at("main_pid").get<pid_t>();
    e.main_start_time = j.at("main_start_time").get<std::uint64_t>();
    e.started_at = j.at("started_at").get<std::string>();
    if (e.cgroup_name.empty() || e.cgroup_name.find('/') != std::string::npos) {
      throw Error(ErrorKind::invalid_argument, "cgroup_name: not a plain name");
    }
    return e;
  } catch (const json::exception& ex) {
    throw Error(ErrorKind::invalid_argument, ex.what());
  }
}

ExecRegistration::ExecRegistration(const fs::path& dir, ExecEntry entry)
    : path_(entry_path(dir, entry.cgroup_name)), entry_(std::move(entry)) {
  fs::create_directories(dir);
  // Written and locked under a name of its own, then linked in place: the entry is never seen
  // unlocked while its runscope lives, and link() refuses a name that exists.
  const fs::path temporary = dir / ("." + entry_.cgroup_name + "." + std::to_string(::getpid()));
  fd_ = UniqueFd(::open(temporary.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd_) throw_system_error("cannot create " + temporary.string());
  struct Unlink {
    const fs::path& p;
    ~Unlink() { ::unlink(p.c_str()); }
  } unlink_temporary{temporary};
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) throw_system_error("flock " + temporary.string());
  write();
  if (::link(temporary.c_str(), path_.c_str()) == 0) return;
  const int err = errno;
  if (err != EEXIST) throw Error(ErrorKind::system, "cannot publish " + path_.string() + ": " + std::strerror(err), err);
  UniqueFd other(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  const bool live = other && ::flock(other.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  const std::string who = entry_.alloc + "/" + entry_.task;
  released_ = true;  // not ours: never remove it
  if (live) {
    throw Error(ErrorKind::conflict, "task " + who + " is already running under `runscope exec` (" + owner_of(path_) + ")");
  }
  throw Error(ErrorKind::conflict, "task " + who + " was left by a `runscope exec` that was killed (" + path_.string() +
                                       "); `runscope orphans` shows it and `runscope orphans --kill` ends it");
}

std::unique_ptr<ExecRegistration> ExecRegistration::publish(const fs::path& dir, ExecEntry entry) {
  try {
    return std::make_unique<ExecRegistration>(dir, std::move(entry));
  } catch (const fs::filesystem_error& e) {
    if (e.code() != std::errc::permission_denied && e.code() != std::errc::read_only_file_system) throw;
  } catch (const Error& e) {
    const int err = e.error_number();
    if (e.kind() != ErrorKind::system || (err != EACCES && err != EPERM && err != EROFS)) throw;
  }
  return nullptr;
}

ExecRegistration::~ExecRegistration() {
  if (!released_) fd_.reset();  // the lock goes; the file stays for `runscope orphans`
}

void ExecRegistration::started(const std::string& location, pid_t main_pid) {
  entry_.location = location;
  entry_.main_pid = main_pid;
  entry_.main_start_time = driver::process_start_time(main_pid).value_or(0);
  try {
    write();
  } catch (const std::exception&) {
    // Best effort: the entry without the location still names the task and its cgroup.
  }
}

void ExecRegistration::release() noexcept {
  if (released_) return;
  released_ = true;
  ::unlink(path_.c_str());
  fd_.reset();
}

// Written over in place, then cut to its length, never truncated to zero first: ext4
// (auto_da_alloc) flushes a file that was truncated to zero and rewritten to disk at its close.
void ExecRegistration::write() {
  const std::string text = to_json_text(entry_);
  if (::pwrite(fd_.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
      ::ftruncate(fd_.get(), static_cast<off_t>(text.size())) != 0) {
    throw_system_error("cannot write " + path_.string());
  }
}

std::vector<Orphan> find_orphans(const fs::path& dir) {
  std::vector<Orphan> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto& path = it->path();
    if (path.extension() != kSuffix || path.filename().string().starts_with(".")) continue;
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // gone, or its runscope lives
    if (!still_linked(fd.get())) continue;                          // released while we looked
    try {
      out.push_back({parse_exec_entry(read_file(path)), path, std::move(fd)});
    } catch (const Error&) {
      // Not an entry runscope wrote: left alone.
    }
  }
  return out;
}

}  // namespace runscope::cli
