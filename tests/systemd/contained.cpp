#include "systemd/contained.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace runscope::systemd_testing {

bool inside_contained_systemd() {
  const char* v = std::getenv("RUNSCOPE_CONTAINED_SYSTEMD");
  return v && std::string(v) == "1";
}

std::string unique_name(const std::string& stem) {
  static std::atomic<int> counter{0};
  return "rt" + std::to_string(::getpid()) + "-" + stem + std::to_string(counter++);
}

namespace {

// Runs in the forked child: async-signal-safe calls only (the parent has threads).
[[noreturn]] void child_main(int go, int report, AfterRelease after, int depth) {
  char byte = 0;
  while (::read(go, &byte, 1) < 0 && errno == EINTR) {
  }
  char buf[512];
  const int fd = ::open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf) : 0;
  if (n < 0) n = 0;
  [[maybe_unused]] auto w = ::write(report, buf, static_cast<size_t>(n));
  ::close(report);
  if (after == AfterRelease::report_then_exit) ::_exit(0);
  if (after == AfterRelease::fork_tree_then_pause)
    for (int i = 0; i < depth; ++i) ::fork();  // 2^depth processes, all staying in the scope
  for (;;) ::pause();
}

}  // namespace

HeldChild::HeldChild(AfterRelease after, int tree_depth) {
  auto go = make_pipe();
  auto report = make_pipe();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::close(go.write.get());
    ::close(report.read.get());
    child_main(go.read.get(), report.write.get(), after, tree_depth);
  }
  go_ = std::move(go.write);
  report_ = std::move(report.read);
}

HeldChild::~HeldChild() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void HeldChild::release() {
  const char byte = 1;
  ASSERT_EQ(::write(go_.get(), &byte, 1), 1);
  go_.reset();
}

std::string HeldChild::first_report(std::chrono::milliseconds timeout) {
  std::string out;
  const auto until = std::chrono::steady_clock::now() + timeout;
  char buf[512];
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{report_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::read(report_.get(), buf, sizeof buf);
    if (n <= 0) break;  // EOF: the child closed its end after writing
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool HeldChild::reap(std::chrono::milliseconds timeout) {
  if (reaped_) return true;
  reaped_ = eventually([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, timeout);
  return reaped_;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::string unified_line(const std::string& proc_cgroup) {
  std::istringstream in(proc_cgroup);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("0::")) return line.substr(3);
  return "";
}

std::string run_command(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) {
    ADD_FAILURE() << "popen " << command;
    return out;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(status, 0) << command << " -> " << out;
  return out;
}

}  // namespace runscope::systemd_testing
