// Start-to-exit of /bin/true through the runner API on this host's cgroupfs (v1 on hybrid and
// legacy hosts), versus a bare fork+exec+wait in the same run. Target: runner p50 within 1.5x.
// Usage (root): start_bench [ITERATIONS] [--running N]. Uses a relative parent runscope-bench-<pid>,
// removed after. --running N first starts N `sleep` tasks through the same runner (each in its own
// cgroup) and keeps them running while it measures: start latency against tasks already there.
// Besides the table it prints one `start key=value...` line (bench/run-all.sh reads it).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "cgroup/host.hpp"
#include "cgroup/v1_backend.hpp"
#include "cgroup/v2_backend.hpp"
#include "common/file.hpp"
#include "driver/runner.hpp"
#include "driver/manager_choice.hpp"

#include <spdlog/spdlog.h>

namespace fs = std::filesystem;
using namespace runscope;
using Steady = std::chrono::steady_clock;

namespace {

constexpr const char* kTrue = "/bin/true";

double millis(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void bare_fork_exec() {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(kTrue, kTrue, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
}

struct Row {
  std::string name;
  std::vector<double> samples;
  double percentile(double p) {
    std::sort(samples.begin(), samples.end());
    return samples[static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1))];
  }
};

// Forwards to the real task cgroup, noting when destroy() begins: the runner calls it right after
// reaping the main process, so that instant is "exit status known"; its return is "cgroup removed".
class TimedCgroup final : public cgroup::TaskCgroup {
 public:
  TimedCgroup(std::unique_ptr<cgroup::TaskCgroup> real, Steady::time_point* destroy_started, bool self_join)
      : real_(std::move(real)), destroy_started_(destroy_started), self_join_(self_join) {}
  int clone_into_fd() const override { return real_->clone_into_fd(); }
  // Without it the runner holds the child and place()s it from the parent (the old v1 path).
  std::vector<UniqueFd> open_join_files() const override {
    return self_join_ ? real_->open_join_files() : std::vector<UniqueFd>{};
  }
  void place(pid_t pid) override { real_->place(pid); }
  std::vector<pid_t> pids() const override { return real_->pids(); }
  bool populated() const override { return real_->populated(); }
  void kill_all(const Deadline& d, cgroup::KillMethod m) override { real_->kill_all(d, m); }
  void destroy(const Deadline& d) override {
    *destroy_started_ = Steady::now();
    real_->destroy(d);
  }
  void set_cpuset(const CpuSet& cpus) override { real_->set_cpuset(cpus); }
  cgroup::Stats stats() const override { return real_->stats(); }
  std::string location() const override { return real_->location(); }
  void disown() noexcept override { real_->disown(); }

 private:
  std::unique_ptr<cgroup::TaskCgroup> real_;
  Steady::time_point* destroy_started_;
  bool self_join_;
};

class TimedBackend final : public cgroup::Backend {
 public:
  TimedBackend(cgroup::Backend& real, bool self_join) : real_(real), self_join_(self_join) {}
  std::string manager_name() const override { return real_.manager_name(); }
  std::unique_ptr<cgroup::TaskCgroup> create(const TaskId& id, const cgroup::Limits& limits) override {
    return std::make_unique<TimedCgroup>(real_.create(id, limits), &destroy_started, self_join_);
  }
  Steady::time_point destroy_started;

 private:
  cgroup::Backend& real_;
  bool self_join_;
};

std::unique_ptr<cgroup::Backend> make_backend(const cgroup::HostLayout& layout, const std::string& parent) {
  if (layout.version() == cgroup::Version::v2) {
    cgroup::V2Options options;
    options.root = layout.unified_mount;
    options.parent = parent;
    return cgroup::make_v2_backend(std::move(options));
  }
  cgroup::V1Options options;
  options.layout = layout;
  options.own = cgroup::own_cgroups();
  options.parent = parent;
  return cgroup::make_v1_backend(std::move(options));
}

void remove_parent(const cgroup::HostLayout& layout, const std::string& parent) {
  auto own = cgroup::own_cgroups();
  std::vector<fs::path> dirs;
  if (layout.version() == cgroup::Version::v2) dirs.push_back(layout.unified_mount / parent);
  for (const auto& [controller, mount] : layout.v1_mounts) {
    auto it = own.find(controller);
    dirs.push_back(mount / (it != own.end() ? fs::path(it->second).relative_path() : fs::path()) / parent);
  }
  for (const auto& dir : dirs) ::rmdir(dir.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 300, running = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--running" && i + 1 < argc) running = std::stoi(argv[++i]);
    else iterations = std::stoi(a);
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "start_bench: needs root (it makes cgroups)\n");
    return 1;
  }
  spdlog::set_level(spdlog::level::warn);
  auto layout = driver::detect_layout();
  const std::string parent = "runscope-bench-" + std::to_string(::getpid());
  auto backend = make_backend(layout, parent);
  driver::CloneSpawner spawner;
  TimedBackend timed(*backend, true), held(*backend, false);
  driver::Runner with_cgroups(&timed, spawner, system_clock());
  driver::Runner held_and_placed(&held, spawner, system_clock());
  driver::Runner without_cgroups(nullptr, spawner, system_clock());
  driver::SpawnSpec spec;
  spec.argv = {kTrue};

  const std::string cgroupfs = "runner, cgroupfs " + std::string(cgroup::to_string(layout.version()));
  Row bare{"bare fork+exec+wait", {}}, runner{cgroupfs + ", removed", {}}, status{cgroupfs + ", status", {}},
      plain{"runner, no_cgroups", {}}, empty{"cgroup create+destroy", {}},
      pinned{cgroupfs + " + cpuset, removed", {}}, empty_pinned{"cgroup create+destroy + cpuset", {}},
      placed{cgroupfs + ", held+placed, removed", {}};
  // The same start with CPUs of its own (every online CPU): what every task paid before a task
  // without a cpuset limit stopped getting a cpuset cgroup.
  cgroup::Limits with_cpus;
  with_cpus.cpuset = CpuSet::parse(trim(read_file("/sys/devices/system/cpu/online")));
  driver::SpawnSpec idle;
  idle.argv = {"/bin/sleep", "3600"};
  std::vector<std::unique_ptr<driver::RunningTask>> background;
  for (int i = 0; i < running; ++i) background.push_back(with_cgroups.start(TaskId("bench", "bg" + std::to_string(i)), {}, idle));
  auto time = [](Row& row, const std::function<void()>& f) {
    auto start = Steady::now();
    f();
    row.samples.push_back(millis(Steady::now() - start));
  };
  for (int i = 0; i < iterations; ++i) {  // interleaved, so load changes hit every row alike
    time(bare, bare_fork_exec);
    auto start = Steady::now();
    time(runner, [&] { with_cgroups.start(TaskId("bench", "t" + std::to_string(i)), {}, spec)->wait(); });
    status.samples.push_back(millis(timed.destroy_started - start));
    time(placed, [&] { held_and_placed.start(TaskId("bench", "h" + std::to_string(i)), {}, spec)->wait(); });
    time(plain, [&] { without_cgroups.start(TaskId("bench", "p"), {}, spec)->wait(); });
    if (layout.version() == cgroup::Version::v1) {
      time(pinned, [&] { with_cgroups.start(TaskId("bench", "c" + std::to_string(i)), with_cpus, spec)->wait(); });
      time(empty_pinned, [&] {
        backend->create(TaskId("bench", "f"), with_cpus)->destroy(Deadline(system_clock(), std::chrono::seconds(10)));
      });
    }
    time(empty, [&] { backend->create(TaskId("bench", "e"), {})->destroy(Deadline(system_clock(), std::chrono::seconds(10))); });
  }
  for (auto& task : background) task->stop();
  background.clear();
  backend.reset();
  remove_parent(layout, parent);

  std::printf("start-to-exit of %s, %d runs each, %d tasks already running, host mode %s\n\n", kTrue, iterations,
              running, std::string(cgroup::to_string(layout.mode)).c_str());
  std::printf("| %-37s | %9s | %9s | %8s |\n", "path", "p50 ms", "p90 ms", "p50 / bare");
  std::printf("|%s|%s|%s|%s|\n", std::string(39, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str(), std::string(12, '-').c_str());
  const double base = bare.percentile(0.5);
  for (Row* row : {&bare, &status, &runner, &placed, &pinned, &plain, &empty, &empty_pinned}) {
    if (row->samples.empty()) continue;
    double p50 = row->percentile(0.5);
    std::printf("| %-37s | %9.3f | %9.3f | %9.2fx |\n", row->name.c_str(), p50, row->percentile(0.9), p50 / base);
  }
  std::printf("start running=%d iterations=%d bare_p50_ms=%.3f status_p50_ms=%.3f removed_p50_ms=%.3f "
              "plain_p50_ms=%.3f cgroup_p50_ms=%.3f ratio_status=%.3f\n",
              running, iterations, base, status.percentile(0.5), runner.percentile(0.5), plain.percentile(0.5),
              empty.percentile(0.5), status.percentile(0.5) / base);
  return 0;
}
