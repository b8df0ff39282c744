// Drives a running runscoped over D-Bus with N concurrent tasks: starts them all (at most
// --inflight calls pending, below the bus's per-connection cap on pending replies), lists them,
// stops and destroys them all, and lists again. A sampler reads the daemon's CPU time, RSS,
// threads and fds from /proc meanwhile. Prints a table and `key=value` lines; exits 1 when a
// call failed or a listing did not show what it should (tests/load/run-load.sh asserts on it).
//   load_client --bus ADDRESS --daemon-pid PID [--n N] [--inflight K] [--alloc A] [--then SHELL_CMD]
//               [-- CMD ARGS...]
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <semaphore>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "compat/sdbus.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kBusName = "org.runscope1";
constexpr const char* kObjectPath = "/org/runscope1";
constexpr const char* kInterface = "org.runscope1.Manager";
constexpr auto kCallTimeout = std::chrono::seconds(120);
constexpr auto kSamplePeriod = std::chrono::milliseconds(500);

struct Options {
  std::string bus;
  pid_t daemon_pid = 0;
  int n = 100;
  int inflight = 32;
  std::string alloc = "load" + std::to_string(::getpid());
  std::string then;  // a shell command run while all N tasks are up (run-load.sh: `runscope ps`)
  std::vector<std::string> argv = {"/bin/sleep", "3600"};
};

struct Sample {
  double cpu_s = 0;  // utime + stime
  long rss_kb = 0;
  long threads = 0;
  long fds = 0;
};

Sample sample(pid_t pid) {
  Sample s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stoul(field);
      if (i == 15) stime = std::stoul(field);
    }
    s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::atol(line.c_str() + 6);
    if (line.rfind("Threads:", 0) == 0) s.threads = std::atol(line.c_str() + 8);
  }
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++s.fds;
  }
  return s;
}

// Keeps the peaks of what the sampler saw while the run goes on.
class Sampler {
 public:
  explicit Sampler(pid_t pid) : pid_(pid), thread_([this] { loop(); }) {}
  ~Sampler() {
    stop_ = true;
    thread_.join();
  }
  Sample peak() {
    std::lock_guard lock(mutex_);
    return peak_;
  }
  std::size_t samples() {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  void loop() {
    while (!stop_) {
      auto s = sample(pid_);
      {
        std::lock_guard lock(mutex_);
        peak_.rss_kb = std::max(peak_.rss_kb, s.rss_kb);
        peak_.threads = std::max(peak_.threads, s.threads);
        peak_.fds = std::max(peak_.fds, s.fds);
        ++count_;
      }
      std::this_thread::sleep_for(kSamplePeriod);
    }
  }
  pid_t pid_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  Sample peak_;
  std::size_t count_ = 0;
  std::thread thread_;
};

std::string spec_json(const Options& o, int i) {
  nlohmann::json spec;
  spec["alloc"] = o.alloc;
  spec["task"] = "t" + std::to_string(i);
  spec["config"]["command"] = o.argv.front();
  spec["config"]["args"] = std::vector<std::string>(o.argv.begin() + 1, o.argv.end());
  return spec.dump();
}

// Runs `call(i, done)` for i in [0, n) with at most `inflight` pending; `done(error)` ends one.
// Returns the number of failed calls (the first error is printed).
template <typename Call>
int run_all(int n, int inflight, Call call) {
  std::counting_semaphore<1 << 20> slots(inflight);
  std::atomic<int> failed{0}, finished{0};
  std::mutex first_mutex;
  std::string first_error;
  for (int i = 0; i < n; ++i) {
    slots.acquire();
    call(i, [&, i](const sdbus::Error* error) {
      if (error != nullptr) {
        std::lock_guard lock(first_mutex);
        if (failed++ == 0) first_error = "call " + std::to_string(i) + ": " + error->getMessage();
      }
      // The count the loop below polls goes last: once it reaches n, run_all may return and take
      // slots (and the rest) with it.
      slots.release();
      ++finished;
    });
  }
  while (finished.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (failed) std::fprintf(stderr, "load_client: %d call(s) failed; first: %s\n", failed.load(), first_error.c_str());
  return failed;
}

// Tasks of our alloc the daemon lists, and how many of them are in `state`.
std::pair<int, int> list_ours(sdbus::IProxy& proxy, const Options& o, const std::string& state, double& seconds) {
  std::vector<sdbus::Struct<std::string, std::string, std::string, uint32_t>> tasks;
  auto t0 = Clock::now();
  proxy.callMethod("ListTasks").onInterface(kInterface).withTimeout(kCallTimeout).storeResultsTo(tasks);
  seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  int ours = 0, in_state = 0;
  for (const auto& t : tasks) {
    if (std::get<0>(t) != o.alloc) continue;
    ++ours;
    if (std::get<2>(t) == state) ++in_state;
  }
  return {ours, in_state};
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "load_client: %s needs a value\n", a.c_str());
        std::exit(64);
      }
      return argv[++i];
    };
    if (a == "--bus") o.bus = next();
    else if (a == "--daemon-pid") o.daemon_pid = std::stoi(next());
    else if (a == "--n") o.n = std::stoi(next());
    else if (a == "--inflight") o.inflight = std::stoi(next());
    else if (a == "--alloc") o.alloc = next();
    else if (a == "--then") o.then = next();
    else if (a == "--") {
      o.argv.assign(argv + i + 1, argv + argc);
      break;
    } else {
      std::fprintf(stderr, "load_client: unknown argument '%s'\n", a.c_str());
      std::exit(64);
    }
  }
  if (o.bus.empty() || o.daemon_pid <= 0 || o.n <= 0 || o.inflight <= 0 || o.argv.empty()) {
    std::fprintf(stderr, "usage: load_client --bus ADDRESS --daemon-pid PID [--n N] [--inflight K] [--alloc A] "
                         "[--then SHELL_CMD] [-- CMD ARGS...]\n");
    std::exit(64);
  }
  return o;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  auto connection = sdbus::createSessionBusConnectionWithAddress(o.bus);
  auto proxy = runscope::compat::make_proxy(*connection, kBusName, kObjectPath);
  connection->enterEventLoopAsync();
  int bad = 0;
  auto cpu0 = sample(o.daemon_pid);
  Sampler sampler(o.daemon_pid);

  auto t0 = Clock::now();
  bad += run_all(o.n, o.inflight, [&](int i, auto done) {
    proxy->callMethodAsync("StartTask").onInterface(kInterface).withTimeout(kCallTimeout)
        .withArguments(spec_json(o, i))
        .uponReplyInvoke([done](runscope::compat::AsyncError e, std::string, std::string) { done(runscope::compat::error_of(e)); });
  });
  double start_s = since(t0);
  auto cpu1 = sample(o.daemon_pid);

  double list_s = 0;
  auto [listed, running] = list_ours(*proxy, o, "running", list_s);
  if (listed != o.n || running != o.n) {
    std::fprintf(stderr, "load_client: ListTasks shows %d of our tasks, %d running; expected %d\n", listed, running,
                 o.n);
    ++bad;
  }
  if (!o.then.empty() && std::system(o.then.c_str()) != 0) {
    std::fprintf(stderr, "load_client: --then command failed: %s\n", o.then.c_str());
    ++bad;
  }

  auto t1 = Clock::now();
  bad += run_all(o.n, o.inflight, [&](int i, auto done) {
    proxy->callMethodAsync("StopTask").onInterface(kInterface).withTimeout(kCallTimeout)
        .withArguments(o.alloc, "t" + std::to_string(i), uint64_t{5'000'000})
        .uponReplyInvoke([done](runscope::compat::AsyncError e) { done(runscope::compat::error_of(e)); });
  });
  double stop_s = since(t1);
  auto cpu2 = sample(o.daemon_pid);
  auto t2 = Clock::now();
  bad += run_all(o.n, o.inflight, [&](int i, auto done) {
    proxy->callMethodAsync("DestroyTask").onInterface(kInterface).withTimeout(kCallTimeout)
        .withArguments(o.alloc, "t" + std::to_string(i))
        .uponReplyInvoke([done](runscope::compat::AsyncError e) { done(runscope::compat::error_of(e)); });
  });
  double destroy_s = since(t2);
  auto cpu3 = sample(o.daemon_pid);

  double relist_s = 0;
  auto [left, unused] = list_ours(*proxy, o, "", relist_s);
  (void)unused;
  if (left != 0) {
    std::fprintf(stderr, "load_client: ListTasks still shows %d of our tasks after destroy\n", left);
    ++bad;
  }
  auto peak = sampler.peak();
  connection->leaveEventLoop();

  std::printf("%-28s %12s\n", "what", "value");
  std::printf("%-28s %12d\n", "tasks", o.n);
  std::printf("%-28s %12.1f\n", "start rate (tasks/s)", o.n / start_s);
  std::printf("%-28s %12.1f\n", "stop rate (tasks/s)", o.n / stop_s);
  std::printf("%-28s %12.1f\n", "destroy rate (tasks/s)", o.n / destroy_s);
  std::printf("%-28s %12.3f\n", "ListTasks at N (s)", list_s);
  std::printf("%-28s %12.2f\n", "daemon CPU start (s)", cpu1.cpu_s - cpu0.cpu_s);
  std::printf("%-28s %12.2f\n", "daemon CPU stop (s)", cpu2.cpu_s - cpu1.cpu_s);
  std::printf("%-28s %12.2f\n", "daemon CPU destroy (s)", cpu3.cpu_s - cpu2.cpu_s);
  std::printf("%-28s %12.1f\n", "daemon peak RSS (MiB)", peak.rss_kb / 1024.0);
  std::printf("%-28s %12ld\n", "daemon peak threads", peak.threads);
  std::printf("%-28s %12ld\n", "daemon peak fds", peak.fds);
  std::printf("load n=%d start_s=%.3f stop_s=%.3f destroy_s=%.3f start_rate=%.1f stop_rate=%.1f list_s=%.4f "
              "cpu_start_s=%.2f cpu_stop_s=%.2f cpu_destroy_s=%.2f cpu_total_s=%.2f rss_start_kb=%ld peak_rss_kb=%ld "
              "rss_end_kb=%ld peak_threads=%ld peak_fds=%ld samples=%zu failures=%d\n",
              o.n, start_s, stop_s, destroy_s, o.n / start_s, o.n / stop_s, list_s, cpu1.cpu_s - cpu0.cpu_s,
              cpu2.cpu_s - cpu1.cpu_s, cpu3.cpu_s - cpu2.cpu_s, cpu3.cpu_s - cpu0.cpu_s, cpu0.rss_kb, peak.rss_kb,
              cpu3.rss_kb, peak.threads, peak.fds, sampler.samples(), bad);
  return bad == 0 ? 0 : 1;
}
