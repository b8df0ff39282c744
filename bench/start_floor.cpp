// The floors a start through runscoped is compared with, in the same run and with the same number
// of starts in flight (bench/daemon-bench.sh). Not a test: it asserts nothing.
//   start_floor systemd N IN_FLIGHT SLICE
//     bare StartTransientUnit on one raw sd-bus connection (Subscribe first), IN_FLIGHT calls at
//     a time, each counted when its JobRemoved arrives; PIDs of children forked beforehand.
//   start_floor cgroupfs N IN_FLIGHT PARENT STATE_DIR
//     a bare loop doing what a start must do on this host's v1 cgroupfs, IN_FLIGHT workers: make
//     the task's folder in each hierarchy, fork a "shim" that joins it and execs /bin/sh, which
//     forks and execs the task (`sleep 600`, running while the clock runs, as the daemon bench's
//     tasks do) and says so; write a small state file; one syncfs per IN_FLIGHT starts. The tasks
//     are killed and the folders removed after the clock stops.
// Prints `bare_<mode>_starts_per_s=X` and `bare_<mode>_starts_seconds=X`.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "start_floor: %s\n", what.c_str());
  std::exit(1);
}

// --- systemd

struct Bare {
  sd_bus* bus = nullptr;
  std::string prefix;
  int done = 0, sent = 0, failed = 0;
};

int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* b = static_cast<Bare*>(userdata);
  uint32_t id;
  const char *job, *unit, *result;
  if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0) return 0;
  if (std::string(unit).rfind(b->prefix, 0) == 0) ++b->done;
  return 0;
}

int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
  if (sd_bus_message_is_method_error(m, nullptr)) {
    auto* b = static_cast<Bare*>(userdata);
    if (b->failed++ < 3) std::fprintf(stderr, "bare start failed: %s\n", sd_bus_message_get_error(m)->message);
    ++b->done;  // never gets a JobRemoved
  }
  return 0;
}

void start_unit(Bare& b, int i, pid_t pid, const std::string& slice) {
  sd_bus_message* m = nullptr;
  if (sd_bus_message_new_method_call(b.bus, &m, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                     "org.freedesktop.systemd1.Manager", "StartTransientUnit") < 0) {
    die("new method call");
  }
  auto name = b.prefix + std::to_string(i) + ".scope";
  sd_bus_message_append(m, "ss", name.c_str(), "fail");
  sd_bus_message_append(m, "a(sv)", 3, "Slice", "s", slice.c_str(), "PIDs", "au", 1, static_cast<uint32_t>(pid),
                        "CollectMode", "s", "inactive-or-failed");
  sd_bus_message_append(m, "a(sa(sv))", 0);
  if (sd_bus_call_async(b.bus, nullptr, m, on_reply, &b, 60 * 1000000ull) < 0) die("StartTransientUnit");
  sd_bus_message_unref(m);
  ++b.sent;
}

double bare_systemd(int n, int in_flight, const std::string& slice) {
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) die("pipe");
  std::vector<pid_t> held;
  for (int i = 0; i < n; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      char c;
      while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
      }
      ::_exit(0);
    }
    held.push_back(pid);
  }
  Bare b;
  b.prefix = "bare-floor-" + std::to_string(::getpid()) + "-";
  if (sd_bus_open_system(&b.bus) < 0) die("connect to the system bus");
  if (sd_bus_match_signal(b.bus, nullptr, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                          "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed, &b) < 0) {
    die("match JobRemoved");
  }
  if (sd_bus_call_method(b.bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                         "org.freedesktop.systemd1.Manager", "Subscribe", nullptr, nullptr, "") < 0) {
    die("Subscribe");
  }
  auto t0 = Steady::now();
  while (b.done < n) {
    while (b.sent < n && b.sent - b.done < in_flight) start_unit(b, b.sent, held[static_cast<std::size_t>(b.sent)], slice);
    int r = sd_bus_process(b.bus, nullptr);
    if (r < 0) die("sd_bus_process");
    if (r == 0) sd_bus_wait(b.bus, 100000);
    if (Steady::now() - t0 > std::chrono::seconds(300)) die("systemd did not finish in 300 s");
  }
  double secs = std::chrono::duration<double>(Steady::now() - t0).count();
  std::vector<char> bytes(held.size(), 1);
  (void)!::write(go[1], bytes.data(), bytes.size());
  for (pid_t p : held) ::waitpid(p, nullptr, 0);
  sd_bus_flush_close_unref(b.bus);
  return secs;
}

// --- cgroupfs v1

struct Hierarchy {
  fs::path base;  // <mount><own cgroup>/<parent>
};

// The v1 hierarchies runscope's v1 backend uses, under our own cgroup (a relative parent).
std::vector<Hierarchy> hierarchies(const std::string& parent) {
  std::vector<Hierarchy> out;
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    auto controllers = line.substr(a + 1, b - a - 1);
    auto own = line.substr(b + 1);
    for (const char* want : {"cpu,cpuacct", "memory", "pids", "freezer"}) {
      if (controllers == want) out.push_back({fs::path("/sys/fs/cgroup") / controllers / fs::path(own).relative_path() / parent});
    }
  }
  if (out.empty()) die("no v1 hierarchies found");
  return out;
}

// One start: folders, the "shim" (sh) that joins them and starts the task, the state file.
pid_t one_start(const std::vector<Hierarchy>& hs, const std::string& name, const fs::path& state) {
  std::vector<std::string> tasks_files;
  for (const auto& h : hs) {
    auto dir = h.base / name;
    if (::mkdir(dir.c_str(), 0755) != 0) die("mkdir " + dir.string() + ": " + std::strerror(errno));
    tasks_files.push_back((dir / "tasks").string());
  }
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) die("pipe");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // the shim and its task, killed together after the clock stops
    for (const auto& f : tasks_files) {  // as runscope's child does: it moves itself in before exec
      int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(126);
      ::close(fd);
    }
    ::dup2(ready[1], 3);
    ::execl("/bin/sh", "sh", "-c", "/bin/sleep 600 & echo started >&3; wait", nullptr);
    ::_exit(127);
  }
  ::close(ready[1]);
  char buf[16];
  while (::read(ready[0], buf, sizeof buf) < 0 && errno == EINTR) {
  }
  ::close(ready[0]);
  std::ofstream(state / (name + ".json")) << "{\"task\":\"" << name << "\",\"pid\":" << pid << "}\n";
  return pid;
}

double bare_cgroupfs(int n, int in_flight, const std::string& parent, const fs::path& state) {
  auto hs = hierarchies(parent);
  for (const auto& h : hs) fs::create_directories(h.base);
  fs::create_directories(state);
  int dir_fd = ::open(state.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::atomic<int> next{0};
  std::mutex m;
  int in_batch = 0;
  std::vector<pid_t> shims(static_cast<std::size_t>(n));
  auto t0 = Steady::now();
  {
    std::vector<std::jthread> workers;
    for (int w = 0; w < in_flight; ++w) {
      workers.emplace_back([&] {
        for (int i; (i = next++) < n;) {
          shims[static_cast<std::size_t>(i)] = one_start(hs, "floor" + std::to_string(i), state);
          std::unique_lock lock(m);
          if (++in_batch == in_flight) {  // one sync per batch of starts
            in_batch = 0;
            ::syncfs(dir_fd);
          }
        }
      });
    }
  }
  ::syncfs(dir_fd);  // the last, partial batch
  double secs = std::chrono::duration<double>(Steady::now() - t0).count();
  for (pid_t shim : shims) ::kill(-shim, SIGKILL);
  while (::waitpid(-1, nullptr, 0) > 0) {
  }
  for (const auto& h : hs) {
    for (int i = 0; i < n; ++i) {
      auto dir = h.base / ("floor" + std::to_string(i));
      for (int tries = 0; tries < 200 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the killed tasks are leaving
      }
    }
    ::rmdir(h.base.c_str());
  }
  ::close(dir_fd);
  fs::remove_all(state);
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) die("usage: start_floor systemd N IN_FLIGHT SLICE | cgroupfs N IN_FLIGHT PARENT STATE_DIR");
  std::string mode = argv[1];
  int n = std::stoi(argv[2]), in_flight = std::stoi(argv[3]);
  double secs = 0;
  if (mode == "systemd") {
    secs = bare_systemd(n, in_flight, argv[4]);
  } else if (mode == "cgroupfs" && argc >= 6) {
    secs = bare_cgroupfs(n, in_flight, argv[4], argv[5]);
  } else {
    die("unknown mode " + mode);
  }
  std::printf("bare_%s_starts_seconds=%.3f\nbare_%s_starts_per_s=%.3f\n", mode.c_str(), secs, mode.c_str(), n / secs);
  return 0;
}
