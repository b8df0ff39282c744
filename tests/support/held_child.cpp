#include "support/held_child.hpp"

#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "common/file.hpp"

namespace runscope::testing {
namespace {

pid_t clone_into(int cgroup_fd) {
  clone_args args{};
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

}  // namespace

HeldChild::HeldChild(const std::string& script, int cgroup_fd) {
  auto pipe = make_pipe();
  pid_ = cgroup_fd >= 0 ? clone_into(cgroup_fd) : ::fork();
  if (pid_ < 0) throw std::runtime_error("fork/clone3 failed: errno " + std::to_string(errno));
  if (pid_ == 0) {
    // Only async-signal-safe calls from here: wait for the go-ahead, then exec.
    pipe.write.reset();
    char byte;
    if (::read(pipe.read.get(), &byte, 1) != 1) ::_exit(126);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  gate_ = std::move(pipe.write);
}

HeldChild::~HeldChild() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void HeldChild::release() {
  char byte = 'g';
  if (::write(gate_.get(), &byte, 1) != 1) throw std::runtime_error("cannot release the held child");
  gate_.reset();
}

int HeldChild::wait() {
  int status = 0;
  if (::waitpid(pid_, &status, 0) != pid_) throw std::runtime_error("waitpid failed");
  pid_ = -1;
  return status;
}

bool is_root() { return ::geteuid() == 0; }

bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return false;
  char state = line[paren + 2];
  return state != 'Z' && state != 'X';
}

void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

void reap_zombies() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds budget) {
  auto end = std::chrono::steady_clock::now() + budget;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::string cpus_allowed(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("Cpus_allowed_list:", 0) == 0) return trim(line.substr(18));
  return "?";
}

}  // namespace runscope::testing
