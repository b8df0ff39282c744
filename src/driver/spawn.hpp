// Starting a task's main process so that it is confined before its first instruction.
//
// Protocol (see docs/driver.md): everything that can fail or allocate happens in the parent
// before clone3: PATH lookup, argv/envp arrays, output files, credentials. clone3(CLONE_PIDFD)
// gives the parent a pidfd; with a v2 cgroup dirfd it adds CLONE_INTO_CGROUP, otherwise the
// child blocks on a "hold" pipe until TaskCgroup::place() has put it in every hierarchy. The
// child then makes only raw syscalls (signals reset, setsid, dup2, setgroups/setresgid/setresuid,
// chdir, execve) and reports a failure as {stage, errno} on a CLOEXEC pipe: EOF means exec'd.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "driver/credentials.hpp"
#include "driver/process.hpp"

namespace runscope::driver {

struct SpawnSpec {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH unless it holds a '/'
  std::vector<std::string> env;            // the task's whole environment, "KEY=VALUE"
  std::filesystem::path cwd;               // empty: runscope's own working directory
  std::optional<Credentials> credentials;  // empty: runscope's own uid/gid/groups
  std::optional<std::filesystem::path> stdout_path;  // empty: inherited; else appended to
  std::optional<std::filesystem::path> stderr_path;  // (created 0644 by runscope if missing)
};

// The seam for the layers above: the runner takes a Spawner, tests may pass their own.
class Spawner {
 public:
  virtual ~Spawner() = default;
  // Starts spec.argv inside `cg` (nullptr: no cgroup). Returns once the program has been exec'd.
  // Throws Error naming the program on any failure, with the child (if any) killed and reaped.
  virtual Process spawn(const SpawnSpec& spec, cgroup::TaskCgroup* cg) = 0;
};

// The real one: clone3 as described above.
class CloneSpawner final : public Spawner {
 public:
  Process spawn(const SpawnSpec& spec, cgroup::TaskCgroup* cg) override;
};

// PATH lookup as execvp does it, with PATH taken from `env` (or a default), done before forking.
// Throws Error(not_found) "cannot execute 'foo': No such file or directory" when nothing matches,
// Error(permission) when the only matches are not executable.
std::string resolve_executable(const std::string& program, const std::vector<std::string>& env);

}  // namespace runscope::driver
