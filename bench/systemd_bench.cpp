// Runs inside the contained systemd (bench/systemd-bench.sh). Two tables, baseline from the same run:
//  1. start-to-running latency of one task through one persistent connection (SystemdBackend)
//     versus `systemd-run --scope true`;
//  2. throughput of starting 500 tasks with bounded concurrency versus bare StartTransientUnit
//     calls on pre-forked children (systemd's own ceiling), 64 in flight.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat/sdbus.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <semaphore>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "systemd/scope_backend.hpp"
#include "systemd/sdbus_manager.hpp"

using namespace runscope;
using namespace runscope::systemd;
using Steady = std::chrono::steady_clock;

extern char** environ;

namespace {

constexpr int kLatencyRuns = 100;
constexpr int kSystemdRunRuns = 50;
constexpr int kThroughputTasks = 500;
constexpr int kInFlight = 64;
constexpr int kThroughputRounds = 3;

double ms(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Summary {
  double p50, p90, p99, mean;
};
Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  double sum = 0;
  for (double x : v) sum += x;
  return {at(0.5), at(0.9), at(0.99), sum / v.size()};
}

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
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  Pipe pipe_;
  std::vector<pid_t> pids_;
};

int run_wait(const std::vector<const char*>& argv) {
  pid_t pid = 0;
  if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, const_cast<char* const*>(argv.data()), environ) != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// One task, start to running and done: fork a held child, place it in its scope, release it,
// it runs /bin/true, reaped. The scope is destroyed outside the timed part.
std::vector<double> our_latency(SystemdBackend& backend) {
  std::vector<double> out;
  for (int i = 0; i < kLatencyRuns; ++i) {
    auto go = make_pipe();
    const auto t0 = Steady::now();
    pid_t pid = ::fork();
    if (pid == 0) {
      char b;
      while (::read(go.read.get(), &b, 1) < 0 && errno == EINTR) {
      }
      ::execl("/bin/true", "true", nullptr);
      ::_exit(127);
    }
    auto cg = backend.create(TaskId("bench" + std::to_string(::getpid()), "lat" + std::to_string(i)), {});
    cg->place(pid);
    [[maybe_unused]] auto w = ::write(go.write.get(), "x", 1);
    ::waitpid(pid, nullptr, 0);
    out.push_back(ms(Steady::now() - t0));
    cg->destroy(Deadline(system_clock(), std::chrono::seconds(10)));
  }
  return out;
}

std::vector<double> systemd_run_latency() {
  std::vector<double> out;
  for (int i = 0; i < kSystemdRunRuns; ++i) {
    const auto t0 = Steady::now();
    run_wait({"systemd-run", "--quiet", "--scope", "--slice=runscope.slice", "true", nullptr});
    out.push_back(ms(Steady::now() - t0));
  }
  return out;
}

// 500 tasks through the backend, kInFlight worker threads; seconds for all to be running.
double our_throughput(SystemdBackend& backend) {
  static int round = 0;
  const std::string tag = "tp" + std::to_string(round++) + "-";
  HeldBatch batch(kThroughputTasks);
  std::vector<std::unique_ptr<cgroup::TaskCgroup>> cgs(kThroughputTasks);
  std::atomic<int> next{0};
  const auto t0 = Steady::now();
  {
    std::vector<std::jthread> workers;
    for (int w = 0; w < kInFlight; ++w)
      workers.emplace_back([&] {
        for (int i; (i = next++) < kThroughputTasks;) {
          cgs[i] = backend.create(TaskId("bench" + std::to_string(::getpid()), tag + std::to_string(i)), {});
          cgs[i]->place(batch.pids()[i]);
        }
      });
  }
  const double secs = std::chrono::duration<double>(Steady::now() - t0).count();
  for (auto& cg : cgs) cg->destroy(Deadline(system_clock(), std::chrono::seconds(10)));
  return secs;
}

// systemd's ceiling: bare async StartTransientUnit calls (Slice + PIDs only), kInFlight at a
// time on one connection, each counted when its JobRemoved arrives, or its error reply (no job,
// so no JobRemoved: it would hold its slot for good); those add to `failed`.
double bare_ceiling(int& failed) {
  HeldBatch batch(kThroughputTasks);
  auto conn = sdbus::createSystemBusConnection();
  auto proxy = compat::make_proxy(*conn, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  std::counting_semaphore<kInFlight> slots(kInFlight);
  // Names differ per round and per process: the last round's scopes may not be collected yet, and
  // only this round's jobs may count (start_floor's are "bare-floor-...").
  static int round = 0;
  const std::string prefix = "bare" + std::to_string(::getpid()) + "r" + std::to_string(round++) + "-";
  compat::on_signal(*proxy, "org.freedesktop.systemd1.Manager", "JobRemoved",
                    [&](uint32_t, const sdbus::ObjectPath&, const std::string& unit, const std::string&) {
                      if (unit.rfind(prefix, 0) != 0) return;
                      { std::lock_guard l(m); ++done; }
                      slots.release();
                      cv.notify_all();
                    });
  proxy->callMethod("Subscribe").onInterface("org.freedesktop.systemd1.Manager");
  conn->enterEventLoopAsync();
  const auto t0 = Steady::now();
  int issued = 0;
  for (; issued < kThroughputTasks; ++issued) {
    const int i = issued;
    if (!slots.try_acquire_for(std::chrono::seconds(60))) break;  // reported below
    std::vector<sdbus::Struct<std::string, sdbus::Variant>> props{
        {"Slice", sdbus::Variant(std::string("runscope.slice"))},
        {"PIDs", sdbus::Variant(std::vector<uint32_t>{static_cast<uint32_t>(batch.pids()[i])})},
        {"CollectMode", sdbus::Variant(std::string("inactive-or-failed"))}};
    std::vector<sdbus::Struct<std::string, std::vector<sdbus::Struct<std::string, sdbus::Variant>>>> aux;
    proxy->callMethodAsync("StartTransientUnit").onInterface("org.freedesktop.systemd1.Manager")
        .withArguments(prefix + std::to_string(i) + ".scope", std::string("fail"), props, aux)
        .uponReplyInvoke([&](compat::AsyncError e, sdbus::ObjectPath) {
          if (!e) return;
          std::fprintf(stderr, "bare start failed: %s\n", compat::error_of(e)->getMessage().c_str());
          { std::lock_guard l(m); ++done; ++failed; }
          slots.release();
          cv.notify_all();
        });
  }
  std::unique_lock l(m);
  if (!cv.wait_for(l, std::chrono::seconds(60), [&] { return done == issued; }) || issued < kThroughputTasks) {
    std::fprintf(stderr, "bare: %d of %d starts unanswered or never sent after 60 s\n", kThroughputTasks - done,
                 kThroughputTasks);
    failed += kThroughputTasks - done;
  }
  const double secs = std::chrono::duration<double>(Steady::now() - t0).count();
  l.unlock();
  conn->leaveEventLoop();
  return secs;  // the held children exit with the batch; their scopes then end by themselves
}

}  // namespace

int main() {
  SdbusSystemdManager manager;
  SystemdBackend backend(manager);
  std::printf("systemd %s, %u CPUs\n\n", manager.version().c_str(), std::thread::hardware_concurrency());

  const auto ours = summarize(our_latency(backend));
  const auto base = summarize(systemd_run_latency());
  std::printf("Table 1: one task, start to running to exit (ms)\n");
  std::printf("%-34s %8s %8s %8s %8s\n", "", "p50", "p90", "p99", "mean");
  std::printf("%-34s %8.2f %8.2f %8.2f %8.2f\n", "runscope (persistent connection)", ours.p50, ours.p90, ours.p99, ours.mean);
  std::printf("%-34s %8.2f %8.2f %8.2f %8.2f\n", "systemd-run --scope true", base.p50, base.p90, base.p99, base.mean);
  std::printf("ratio p50: %.3f (target <= 0.4)\n\n", ours.p50 / base.p50);

  // Alternating rounds, median of each: the VM is shared, so one round alone is noisy.
  std::vector<double> bare, mine;
  int bare_failed = 0;
  for (int round = 0; round < kThroughputRounds; ++round) {
    bare.push_back(bare_ceiling(bare_failed));
    mine.push_back(our_throughput(backend));
  }
  const double bare_s = summarize(bare).p50;
  const double mine_s = summarize(mine).p50;
  std::printf("Table 2: %d tasks, %d in flight (median of %d rounds)\n", kThroughputTasks, kInFlight,
              kThroughputRounds);
  std::printf("%-34s %10s %12s\n", "", "seconds", "scopes/s");
  std::printf("%-34s %10.3f %12.1f\n", "runscope SystemdBackend", mine_s, kThroughputTasks / mine_s);
  std::printf("%-34s %10.3f %12.1f\n", "bare StartTransientUnit (ceiling)", bare_s, kThroughputTasks / bare_s);
  std::printf("ratio: %.3f of the ceiling (target >= 0.6)\n", bare_s / mine_s);
  if (bare_failed > 0)
    std::printf("bare StartTransientUnit calls that failed: %d (the ceiling is not one)\n", bare_failed);
  std::printf("systemd version=%s ours_p50_ms=%.2f systemd_run_p50_ms=%.2f latency_ratio=%.3f tasks=%d inflight=%d "
              "ours_s=%.3f ceiling_s=%.3f ours_per_s=%.1f ceiling_per_s=%.1f throughput_ratio=%.3f ceiling_failed=%d\n",
              manager.version().substr(0, manager.version().find(' ')).c_str(), ours.p50, base.p50, ours.p50 / base.p50, kThroughputTasks, kInFlight, mine_s,
              bare_s, kThroughputTasks / mine_s, kThroughputTasks / bare_s, bare_s / mine_s, bare_failed);
  return bare_failed == 0 ? 0 : 1;
}
