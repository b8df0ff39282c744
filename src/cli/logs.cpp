// `runscope logs ALLOC TASK [-f]`: the task's output. File target: the daemon names the files
// (stdout to our stdout, stderr to our stderr); -f follows them across rotation until the task
// has ended and everything is read. Journal target: journalctl with the task's match fields.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <thread>
#include <vector>

#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"
#include "common/fd.hpp"

namespace runscope::cli {
namespace {

constexpr const char* kJournalctl = "journalctl";
constexpr auto kFollowPoll = std::chrono::milliseconds(200);

struct Options {
  TaskArgs task;
  bool follow = false;
};

// One log file being read: reopened when rotation replaced it or truncation shrank it.
class LogFile {
 public:
  LogFile(std::string path, int out) : path_(std::move(path)), out_(out) {}
  // Copies what is new; returns whether anything was.
  bool drain() {
    reopen_if_replaced();
    if (!fd_) return false;
    bool any = false;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) break;
      any = true;
      for (ssize_t done = 0; done < n;) {
        ssize_t w = ::write(out_, buf + done, static_cast<std::size_t>(n - done));
        if (w <= 0) return any;
        done += w;
      }
    }
    return any;
  }

 private:
  void reopen_if_replaced() {
    struct stat now {};
    if (::stat(path_.c_str(), &now) != 0) return;  // not there yet, or mid-rotation
    struct stat open_one {};
    bool replaced = !fd_ || ::fstat(fd_.get(), &open_one) != 0 || open_one.st_ino != now.st_ino ||
                    ::lseek(fd_.get(), 0, SEEK_CUR) > now.st_size;
    if (replaced) fd_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  }

  std::string path_;
  int out_;
  UniqueFd fd_;
};

[[noreturn]] void exec_journalctl(const nlohmann::json& logs, bool follow) {
  std::vector<std::string> args{kJournalctl, "--no-pager", "-o", "cat"};
  if (follow) args.emplace_back("-f");
  for (const auto& [key, value] : logs.value("journal_match", nlohmann::json::object()).items()) {
    args.push_back(key + "=" + value.get<std::string>());
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execvp(kJournalctl, argv.data());
  throw_system_error("exec journalctl (the task logs to the journal)");
}

int run_logs(const Globals& globals, const Options& o) {
  auto client = connect_daemon(globals);
  auto logs = client->logs(o.task.id());
  if (logs.at("target") == "journal") exec_journalctl(logs, o.follow);
  std::vector<LogFile> files;
  if (logs.contains("stdout")) files.emplace_back(logs["stdout"].get<std::string>(), STDOUT_FILENO);
  if (logs.contains("stderr")) files.emplace_back(logs["stderr"].get<std::string>(), STDERR_FILENO);
  auto drain_all = [&] {
    bool any = false;
    for (auto& f : files) any |= f.drain();
    return any;
  };
  drain_all();
  while (o.follow) {
    auto state = client->inspect(o.task.id()).at("state");
    bool ended = state != "running" && state != "pending";
    if (!drain_all() && ended) break;  // ended and everything read
    std::this_thread::sleep_for(kFollowPoll);
  }
  return 0;
}

}  // namespace

Command add_logs(CLI::App& app, const Globals& globals) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("logs", "Print a task's stdout and stderr");
  add_task_args(*sub, o->task);
  sub->add_flag("-f,--follow", o->follow, "Keep printing new output until the task has ended");
  return {sub, [&globals, o] { return run_logs(globals, *o); }};
}

}  // namespace runscope::cli
