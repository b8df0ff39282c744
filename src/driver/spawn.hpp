// Starting a task's main process so that it is confined before its first instruction.
//
// Protocol (see docs/driver.md): everything that can fail or allocate happens in the parent
// before the clone: the PATH candidates, argv/envp arrays, output files, credentials. The clone
// (CLONE_PIDFD) gives the parent a pidfd; with a v2 cgroup dirfd it is clone3 with
// CLONE_INTO_CGROUP, otherwise the child is a vfork child (CLONE_VM | CLONE_VFORK) on a stack of
// its own in the parent's memory until its exec, cloned from a thread of its own when it is held:
// it blocks on a "hold" pipe until TaskCgroup::place() has put it in every hierarchy (or, on v1,
// joins them itself). The child then makes only raw syscalls (signals reset, setsid, dup2,
// setgroups/setresgid/setresuid, chdir, execve of each PATH candidate in turn) and reports a
// failure as {stage, errno} on a CLOEXEC pipe: EOF means exec'd. The PATH search happens in the
// child, after the credential switch: a task can learn nothing about folders its user cannot search.
#pragma once

#include <array>
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
  std::filesystem::path path;              // set: the file to execute instead, argv[0] only a name
  std::vector<std::string> env;            // the task's whole environment, "KEY=VALUE"
  std::filesystem::path cwd;               // empty: runscope's own working directory
  std::optional<Credentials> credentials;  // empty: runscope's own uid/gid/groups
  std::optional<std::filesystem::path> stdout_path;  // empty: inherited; else appended to
  std::optional<std::filesystem::path> stderr_path;  // (created 0600 by runscope if missing)
  // Descriptors (>= 3) the child gets as its fds 0, 1, 2 (-1: /dev/null for stdin, the paths
  // above or inherited for the others). The caller keeps them; pipe ends, for instance.
  std::array<int, 3> stdio_fds{-1, -1, -1};
  // Its new fd 0 (a terminal) becomes the controlling terminal of the child's new session
  // (TIOCSCTTY, never stolen from another session): `runscope enter -t`.
  bool controlling_terminal = false;
};

// The seam for the layers above: the runner takes a Spawner, tests may pass their own.
class Spawner {
 public:
  virtual ~Spawner() = default;
  // Starts spec.argv inside `cg` (nullptr: no cgroup). Returns once the program has been exec'd.
  // Throws Error naming the program on any failure, with the child (if any) killed and reaped.
  virtual Process spawn(const SpawnSpec& spec, cgroup::TaskCgroup* cg) = 0;
};

// The real one: the clone described above.
class CloneSpawner final : public Spawner {
 public:
  Process spawn(const SpawnSpec& spec, cgroup::TaskCgroup* cg) override;
};

// The paths execve tries for `program`, in order: itself when it holds a '/', else each entry of
// the PATH in `env` (or a default) joined with it, an empty entry meaning the working directory.
// Pure: nothing is looked at on disk. The child tries them as the task's user, as execvp does:
// ENOENT/ENOTDIR go on to the next, EACCES is remembered and the search goes on, anything else
// stops it; the spawn then throws Error(not_found) "cannot execute 'foo': No such file or
// directory", or Error(permission) "...: Permission denied" when some candidate was denied.
// Throws Error(invalid_argument) for an empty program.
std::vector<std::string> executable_candidates(const std::string& program, const std::vector<std::string>& env);

}  // namespace runscope::driver
