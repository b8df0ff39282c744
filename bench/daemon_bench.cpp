// The client side of bench/daemon-bench.sh: drives a running runscoped over its bus and prints
// one `key=value` line per figure (the script makes the table). Not a test: it asserts nothing.
//   daemon_bench --bus ADDRESS --daemon-pid PID --shim PATH [--starts N] [--in-flight K]
//                [--rss-tasks M] [--prefix NAME] [--hostile-uid UID] [--samples S]
// Phases: daemon RSS idle; N starts of `sleep 600` with K calls in flight (starts/s, then each
// destroyed); M tasks of `sleep 600` (daemon RSS, each shim's RSS and PSS), then all killed;
// with --hostile-uid, root's latency (S ListTasks, S/4 StartTask) on the idle daemon, then while
// a member (that uid, a forked child) holds 8 stops of TERM-ignoring tasks with an hour of grace
// and floods the bus from one connection (tests/support/bus_flood.hpp): p50 and p99 of each.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "support/bus_flood.hpp"

using namespace runscope;
namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

namespace {

struct Options {
  std::string bus, shim, prefix = "daemon";
  pid_t daemon_pid = 0;
  int starts = 500, in_flight = 32, rss_tasks = 1000;
  uid_t hostile_uid = 0;  // 0: no latency phase
  int samples = 400;
};

// A field of /proc/PID/status or smaps_rollup in KiB ("VmRSS:", "Pss:"); 0 if unreadable.
long kib(pid_t pid, const char* file, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::strtol(line.c_str() + std::strlen(field), nullptr, 10);
  return 0;
}

std::vector<pid_t> pids_running(const std::string& exe) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::error_code ec;
    auto target = fs::read_symlink(entry.path() / "exe", ec);
    if (!ec && target == exe) out.push_back(static_cast<pid_t>(std::stol(entry.path().filename())));
  }
  return out;
}

std::string spec(const std::string& alloc, int i, const std::vector<std::string>& argv) {
  nlohmann::json config{{"command", argv.front()}, {"args", std::vector<std::string>(argv.begin() + 1, argv.end())}};
  return nlohmann::json{{"alloc", alloc}, {"task", "t" + std::to_string(i)}, {"driver", "raw_exec"},
                        {"config", config}, {"log", {{"target", "file"}}}}
      .dump();
}

// Runs `body(i)` for i in [0, n) on `workers` threads, one bus connection each; returns seconds.
template <typename Body>
double fan_out(const Options& o, int n, int workers, Body body) {
  std::atomic<int> next{0}, failed{0};
  auto t0 = Steady::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      api::ManagerClient client(o.bus);
      for (int i; (i = next++) < n;) {
        try {
          body(client, i);
        } catch (const std::exception& e) {
          if (failed++ < 3) std::fprintf(stderr, "call %d failed: %s\n", i, e.what());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) std::fprintf(stderr, "%d of %d calls failed\n", failed.load(), n);
  return std::chrono::duration<double>(Steady::now() - t0).count();
}

void print(const Options& o, const char* key, double value) { std::printf("%s_%s=%.3f\n", o.prefix.c_str(), key, value); }

void starts(const Options& o) {
  std::string alloc = "bench-starts-" + std::to_string(::getpid());
  // Tasks that keep running while the clock runs, as the floors' do (bench/start_floor.cpp): a
  // start is measured, not the end of a task that exits at once.
  double s = fan_out(o, o.starts, o.in_flight,
                     [&](api::ManagerClient& c, int i) { c.start(spec(alloc, i, {"/bin/sleep", "600"})); });
  print(o, "starts", o.starts);
  print(o, "starts_in_flight", o.in_flight);
  print(o, "starts_seconds", s);
  print(o, "starts_per_s", o.starts / s);
  fan_out(o, o.starts, o.in_flight,
          [&](api::ManagerClient& c, int i) { c.destroy(TaskId(alloc, "t" + std::to_string(i))); });
}

void resident(const Options& o) {
  std::string alloc = "bench-rss-" + std::to_string(::getpid());
  double s = fan_out(o, o.rss_tasks, o.in_flight,
                     [&](api::ManagerClient& c, int i) { c.start(spec(alloc, i, {"/bin/sleep", "600"})); });
  print(o, "rss_tasks", o.rss_tasks);
  print(o, "rss_tasks_start_seconds", s);
  print(o, "rss_busy_kib", kib(o.daemon_pid, "status", "VmRSS:"));
  auto shims = pids_running(o.shim);
  long rss_sum = 0, rss_max = 0, pss_sum = 0;
  for (pid_t p : shims) {
    long r = kib(p, "status", "VmRSS:");
    rss_sum += r;
    rss_max = std::max(rss_max, r);
    pss_sum += kib(p, "smaps_rollup", "Pss:");
  }
  print(o, "shims", static_cast<double>(shims.size()));
  print(o, "shim_rss_avg_kib", shims.empty() ? 0 : double(rss_sum) / shims.size());
  print(o, "shim_rss_max_kib", rss_max);
  print(o, "shim_pss_avg_kib", shims.empty() ? 0 : double(pss_sum) / shims.size());
  double stop_s = fan_out(o, o.rss_tasks, o.in_flight, [&](api::ManagerClient& c, int i) {
    TaskId id(alloc, "t" + std::to_string(i));
    c.stop(id, Duration::zero());
    c.destroy(id);
  });
  print(o, "rss_tasks_stop_seconds", stop_s);
  print(o, "rss_after_kib", kib(o.daemon_pid, "status", "VmRSS:"));
}

double ms_since(Steady::time_point t0) { return std::chrono::duration<double, std::milli>(Steady::now() - t0).count(); }

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// Root's calls, one at a time on one connection: ListTasks, then StartTask of /bin/true (each
// destroyed afterwards, untimed). Prints p50/p99 under `<prefix>_<phase>_...`.
void sample_root(const Options& o, const std::string& phase) {
  api::ManagerClient c(o.bus);
  std::vector<double> list, start;
  for (int i = 0; i < o.samples; ++i) {
    auto t0 = Steady::now();
    c.list();
    list.push_back(ms_since(t0));
  }
  std::string alloc = "bench-lat-" + phase + "-" + std::to_string(::getpid());
  for (int i = 0; i < std::max(o.samples / 4, 1); ++i) {
    auto t0 = Steady::now();
    c.start(spec(alloc, i, {"/bin/true"}));
    start.push_back(ms_since(t0));
  }
  for (int i = 0; i < std::max(o.samples / 4, 1); ++i) c.destroy(TaskId(alloc, "t" + std::to_string(i)));
  print(o, (phase + "_list_p50_ms").c_str(), quantile(list, 0.5));
  print(o, (phase + "_list_p99_ms").c_str(), quantile(list, 0.99));
  print(o, (phase + "_start_p50_ms").c_str(), quantile(start, 0.5));
  print(o, (phase + "_start_p99_ms").c_str(), quantile(start, 0.99));
}

void hostile(const Options& o) {
  sample_root(o, "idle");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe");
  pid_t member = ::fork();  // no other thread runs here: the child may run C++ freely
  if (member == 0) testing::run_hostile_member(o.bus, o.hostile_uid, fds[1]);
  ::close(fds[1]);
  std::string said;
  bool ready = false;
  auto t0 = Steady::now();
  while (!ready && Steady::now() - t0 < std::chrono::seconds(60)) {
    testing::read_member_report(fds[0], said, ready);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!ready) throw std::runtime_error("the hostile member did not get going: " + said);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  long before = testing::read_member_report(fds[0], said, ready);
  auto t1 = Steady::now();
  sample_root(o, "hostile");
  long after = testing::read_member_report(fds[0], said, ready);
  print(o, "hostile_flood_calls_per_s", (after - before) / (ms_since(t1) / 1000));
  ::kill(member, SIGKILL);
  ::waitpid(member, nullptr, 0);
  ::close(fds[0]);
  api::ManagerClient c(o.bus);
  for (const auto& t : c.list()) {
    if (t.alloc == "hostile") c.destroy(TaskId(t.alloc, t.task));
  }
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--bus") o.bus = v;
    else if (k == "--shim") o.shim = v;
    else if (k == "--prefix") o.prefix = v;
    else if (k == "--daemon-pid") o.daemon_pid = std::stoi(v);
    else if (k == "--starts") o.starts = std::stoi(v);
    else if (k == "--in-flight") o.in_flight = std::stoi(v);
    else if (k == "--rss-tasks") o.rss_tasks = std::stoi(v);
    else if (k == "--hostile-uid") o.hostile_uid = static_cast<uid_t>(std::stoul(v));
    else if (k == "--samples") o.samples = std::stoi(v);
    else return false;
  }
  return !o.bus.empty() && o.daemon_pid > 0 && !o.shim.empty() && argc % 2 == 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr, "usage: %s --bus ADDRESS --daemon-pid PID --shim PATH [--starts N] [--in-flight K] "
                         "[--rss-tasks M] [--prefix NAME] [--hostile-uid UID] [--samples S]\n", argv[0]);
    return 2;
  }
  o.shim = fs::weakly_canonical(o.shim).string();  // as /proc/PID/exe shows it
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    print(o, "rss_idle_kib", kib(o.daemon_pid, "status", "VmRSS:"));
    if (o.starts > 0) starts(o);
    if (o.rss_tasks > 0) resident(o);
    if (o.hostile_uid != 0) hostile(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "daemon_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
