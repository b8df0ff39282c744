// Runs inside the contained systemd (bench/supervisor-bench.sh): what it costs systemd to give each
// task's supervisor (runscope-shim) a home of its own outside the daemon's unit, measured on bare
// D-Bus calls with pre-forked children (a task and a shim stand-in per start), 64 in flight on one
// connection, in the same run as the baseline:
//   bare    one StartTransientUnit per start: the task's scope only (shims stay in the daemon's unit)
//   aux     one StartTransientUnit per start: the task's scope, Wants= the shim's scope, which is
//           made in the same call as an auxiliary unit (both jobs in one transaction)
//   two     two StartTransientUnit per start: the task's scope and the shim's scope, both in flight
//   attach  one StartTransientUnit (the task's scope) plus AttachProcessesToUnit of the shim into
//           one long-lived delegated scope that holds every shim
//   join    one StartTransientUnit (the task's scope); the shim goes into a cgroup of its own
//           (mkdir) below one long-lived delegated scope by a write to its cgroup.procs, no call
// A start counts once every job it made has ended (JobRemoved) and every call has answered.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat/sdbus.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.hpp"

using namespace runscope;
using Steady = std::chrono::steady_clock;

namespace {

constexpr int kInFlight = 64;
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

using Props = std::vector<sdbus::Struct<std::string, sdbus::Variant>>;
using Aux = std::vector<sdbus::Struct<std::string, Props>>;

// Children forked up front and held on one shared pipe: each exits after reading one byte.
class HeldBatch {
 public:
  explicit HeldBatch(int n) : pipe_(make_pipe()) {
    for (int i = 0; i < n; ++i) {
      pid_t pid = ::fork();
      if (pid == 0) {
        char b;
        while (::read(pipe_.read.get(), &b, 1) < 0 && errno == EINTR) {
        }
        ::_exit(0);
      }
      pids_.push_back(pid);
    }
  }
  ~HeldBatch() {
    std::vector<char> bytes(pids_.size(), 1);
    [[maybe_unused]] auto w = ::write(pipe_.write.get(), bytes.data(), bytes.size());
    for (pid_t p : pids_) ::waitpid(p, nullptr, 0);
  }
  pid_t operator[](std::size_t i) const { return pids_[i]; }

 private:
  Pipe pipe_;
  std::vector<pid_t> pids_;
};

enum class Layout { bare, aux, two, attach, join };
const char* name_of(Layout l) {
  switch (l) {
    case Layout::bare: return "bare";
    case Layout::aux: return "aux";
    case Layout::two: return "two";
    case Layout::attach: return "attach";
    case Layout::join: return "join";
  }
  return "?";
}

Props scope_props(const std::string& slice, pid_t pid) {
  return {{"Slice", sdbus::Variant(slice)},
          {"PIDs", sdbus::Variant(std::vector<uint32_t>{static_cast<uint32_t>(pid)})},
          {"CollectMode", sdbus::Variant(std::string("inactive-or-failed"))},
          {"DefaultDependencies", sdbus::Variant(false)}};
}

// One round: `starts` starts in the given layout, kInFlight at a time; seconds until all are done.
class Round {
 public:
  Round(Layout layout, int starts, const std::string& tag) : layout_(layout), starts_(starts), tag_(tag) {
    conn_ = sdbus::createSystemBusConnection();
    proxy_ = compat::make_proxy(*conn_, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    compat::on_signal(*proxy_, kManager, "JobRemoved",
                      [this](uint32_t, const sdbus::ObjectPath&, const std::string& unit, const std::string& result) {
                        if (unit.rfind(tag_, 0) != 0) return;
                        if (result != "done") std::fprintf(stderr, "job for %s: %s\n", unit.c_str(), result.c_str());
                        part_done(std::atoi(unit.c_str() + tag_.size()));
                      });
    proxy_->callMethod("Subscribe").onInterface(kManager);
    conn_->enterEventLoopAsync();
  }
  ~Round() { conn_->leaveEventLoop(); }

  double run() {
    HeldBatch tasks(starts_), shims(starts_);
    std::unique_ptr<HeldBatch> holder;
    if (layout_ == Layout::attach || layout_ == Layout::join) holder = make_shared_home();
    const int parts = layout_ == Layout::bare ? 1 : 2;
    left_.assign(static_cast<std::size_t>(starts_), parts);
    const auto t0 = Steady::now();
    for (int i = 0; i < starts_; ++i) {
      slots_.acquire();
      start(i, tasks[static_cast<std::size_t>(i)], shims[static_cast<std::size_t>(i)]);
    }
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_ == starts_; }))
      std::fprintf(stderr, "%s: only %d of %d starts ended\n", name_of(layout_), done_, starts_);
    const double secs = std::chrono::duration<double>(Steady::now() - t0).count();
    lock.unlock();
    misplaced_ = count_misplaced(shims);
    return secs;
  }
  int misplaced() const { return misplaced_; }
  int failed() {
    std::lock_guard lock(mutex_);  // a late reply may still land after a run() that timed out
    return failed_;
  }

 private:
  // The unit name carries the start's index right after the tag, so every signal finds its start.
  std::string unit(int i, const char* kind) const { return tag_ + std::to_string(i) + kind + ".scope"; }

  void start(int i, pid_t task, pid_t shim) {
    Aux aux;
    Props props = scope_props("runscope.slice", task);
    const auto shim_unit = unit(i, "\\x2dshim");
    if (layout_ == Layout::aux) {
      props.emplace_back("Wants", sdbus::Variant(std::vector<std::string>{shim_unit}));
      aux.emplace_back(shim_unit, scope_props("runscope-supervisors.slice", shim));
    }
    call_start(i, unit(i, "-task"), props, aux);
    if (layout_ == Layout::two) call_start(i, shim_unit, scope_props("runscope-supervisors.slice", shim), {});
    if (layout_ == Layout::join) {
      // What the forked shim does before it execs, here done for it: a cgroup of its own, joined.
      const auto dir = home_dir_ + "/" + std::to_string(i);
      if (::mkdir(dir.c_str(), 0755) != 0) std::fprintf(stderr, "mkdir %s: %s\n", dir.c_str(), std::strerror(errno));
      FILE* procs = std::fopen((dir + "/cgroup.procs").c_str(), "w");
      if (procs == nullptr || std::fprintf(procs, "%d", shim) < 0 || std::fclose(procs) != 0)
        std::fprintf(stderr, "join %s: %s\n", dir.c_str(), std::strerror(errno));
      part_done(i);
    }
    if (layout_ == Layout::attach) {
      proxy_->callMethodAsync("AttachProcessesToUnit").onInterface(kManager)
          .withArguments(home_unit(), std::string(""), std::vector<uint32_t>{static_cast<uint32_t>(shim)})
          .uponReplyInvoke([this, i](compat::AsyncError e) {
            if (e) std::fprintf(stderr, "attach: %s\n", compat::error_of(e)->getMessage().c_str());
            part_done(i);
          });
    }
  }

  void call_start(int i, const std::string& name, const Props& props, const Aux& aux) {
    proxy_->callMethodAsync("StartTransientUnit").onInterface(kManager)
        .withArguments(name, std::string("fail"), props, aux)
        .uponReplyInvoke([this, i, name](compat::AsyncError e, sdbus::ObjectPath) {
          if (!e) return;
          std::fprintf(stderr, "start %s: %s\n", name.c_str(), compat::error_of(e)->getMessage().c_str());
          start_failed(i);
        });
  }

  // A refused StartTransientUnit makes no job, so no JobRemoved would ever end its part(s) (two
  // with `aux`): the start ends here, failed, or its slot stays taken and run() blocks for good.
  void start_failed(int i) {
    std::lock_guard lock(mutex_);
    if (i < 0 || i >= starts_ || left_[static_cast<std::size_t>(i)] == 0) return;
    left_[static_cast<std::size_t>(i)] = 0;
    ++failed_;
    ++done_;
    slots_.release();
    cv_.notify_all();
  }

  void part_done(int i) {
    std::lock_guard lock(mutex_);
    if (i < 0 || i >= starts_ || left_[static_cast<std::size_t>(i)] == 0) return;
    if (--left_[static_cast<std::size_t>(i)] > 0) return;
    ++done_;
    slots_.release();
    cv_.notify_all();
  }

  std::string home_unit() const { return "home-" + tag_ + ".scope"; }  // not under the tag: its job is not a start's

  // `attach`: one delegated scope holding every shim, kept alive by a placeholder process.
  std::unique_ptr<HeldBatch> make_shared_home() {
    auto holder = std::make_unique<HeldBatch>(1);
    Props props = scope_props("runscope-supervisors.slice", (*holder)[0]);
    props.emplace_back("Delegate", sdbus::Variant(true));
    proxy_->callMethod("StartTransientUnit").onInterface(kManager)
        .withArguments(home_unit(), std::string("fail"), props, Aux{});
    for (int i = 0; i < 100 && !in_unit((*holder)[0], home_unit()); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    home_dir_ = "/sys/fs/cgroup" + cgroup_of((*holder)[0]);
    return holder;
  }

  static std::string cgroup_of(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
    FILE* f = std::fopen(path, "r");
    if (!f) return "";
    char line[512];
    std::string out;
    while (std::fgets(line, sizeof line, f))
      if (std::string(line).rfind("0::", 0) == 0) out = std::string(line + 3, std::strlen(line + 3) - 1);
    std::fclose(f);
    return out;
  }

  static bool in_unit(pid_t pid, const std::string& unit) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
    FILE* f = std::fopen(path, "r");
    if (!f) return false;
    char line[512];
    bool found = false;
    const std::string want = "/" + unit + "\n";
    while (std::fgets(line, sizeof line, f)) {
      const std::string l(line);
      found = found || (l.rfind("0::", 0) == 0 && l.size() >= want.size() && l.ends_with(want));
    }
    std::fclose(f);
    return found;
  }

  // Shims not in the home their layout gives them once every start ended.
  int count_misplaced(const HeldBatch& shims) const {
    if (layout_ == Layout::bare) return 0;
    int bad = 0;
    for (int i = 0; i < starts_; ++i) {
      auto want = layout_ == Layout::attach ? home_unit() : unit(i, "\\x2dshim");
      if (layout_ == Layout::join) want = home_unit() + "/" + std::to_string(i);
      if (!in_unit(shims[static_cast<std::size_t>(i)], want)) ++bad;
    }
    return bad;
  }

  Layout layout_;
  int starts_;
  std::string tag_;
  std::unique_ptr<sdbus::IConnection> conn_;
  std::unique_ptr<sdbus::IProxy> proxy_;
  std::counting_semaphore<kInFlight> slots_{kInFlight};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<int> left_;
  int done_ = 0;
  int failed_ = 0;  // starts whose StartTransientUnit systemd refused
  int misplaced_ = 0;
  std::string home_dir_;  // `join`: the long-lived scope's cgroup folder
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  const int starts = env_int("SUPERVISOR_BENCH_STARTS", 500);
  const int rounds = env_int("SUPERVISOR_BENCH_ROUNDS", 3);
  const Layout layouts[] = {Layout::bare, Layout::aux, Layout::two, Layout::attach, Layout::join};
  std::map<Layout, std::vector<double>> secs;
  int misplaced = 0, failed = 0;
  // Rounds alternate between the layouts: the VM is shared, so one layout's round alone is noisy.
  for (int r = 0; r < rounds; ++r) {
    for (Layout l : layouts) {
      const std::string tag = "sb" + std::to_string(::getpid()) + name_of(l) + std::to_string(r) + "n";
      Round round(l, starts, tag);
      secs[l].push_back(round.run());
      misplaced += round.misplaced();
      failed += round.failed();
    }
  }
  const double bare = starts / median(secs[Layout::bare]);
  std::printf("Supervisor homes on systemd: %d starts (task + shim stand-in), %d in flight, median of %d rounds\n",
              starts, kInFlight, rounds);
  std::printf("%-58s %10s %8s\n", "", "starts/s", "of bare");
  const char* label[] = {"bare: task scope only (shims stay in the daemon's unit)",
                         "aux: one StartTransientUnit, shim scope as aux unit",
                         "two: a StartTransientUnit for each scope",
                         "attach: task scope + AttachProcessesToUnit (shared home)",
                         "join: task scope + mkdir/join below a delegated home"};
  for (Layout l : layouts) {
    const double rate = starts / median(secs[l]);
    std::printf("%-58s %10.1f %8.2f\n", label[static_cast<int>(l)], rate, rate / bare);
  }
  std::printf("shims not in their home after the runs: %d\n", misplaced);
  std::printf("starts refused by systemd: %d\n", failed);
  std::printf("starts=%d inflight=%d rounds=%d", starts, kInFlight, rounds);
  for (Layout l : layouts) std::printf(" %s_per_s=%.1f", name_of(l), starts / median(secs[l]));
  std::printf(" misplaced=%d failed=%d\n", misplaced, failed);
  return misplaced == 0 && failed == 0 ? 0 : 1;
}
