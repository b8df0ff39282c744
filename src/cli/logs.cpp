// `runscope logs ALLOC TASK [-f]`: the task's output. File target: the daemon opens the files for
// us (stdout to our stdout, stderr to our stderr; no filesystem access needed); -f follows them
// across rotation until the task has ended and everything is read. Journal target: journalctl with the task's match fields.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
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

// One log file being read through fds runscoped opens for us (OpenTaskLog): the files are root's
// alone. Once the open one has nothing new, a fresh fd tells whether rotation replaced the file
// (another inode) or truncation shrank it; the old fd is read to its end first.
class LogFile {
 public:
  using Opener = std::function<UniqueFd()>;  // an empty fd: no such file yet
  LogFile(Opener open, int out) : open_(std::move(open)), out_(out) {}
  // Copies what is new; returns whether anything was.
  bool drain() {
    bool any = copy();
    if (!any && reopen_if_replaced()) any = copy();
    return any;
  }

 private:
  bool copy() {
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
  bool reopen_if_replaced() {
    UniqueFd fresh = open_();
    struct stat now {};
    if (!fresh || ::fstat(fresh.get(), &now) != 0) return false;  // not there yet, or mid-rotation
    struct stat open_one {};
    bool replaced = !fd_ || ::fstat(fd_.get(), &open_one) != 0 || open_one.st_ino != now.st_ino ||
                    open_one.st_dev != now.st_dev || ::lseek(fd_.get(), 0, SEEK_CUR) > now.st_size;
    if (replaced) fd_ = std::move(fresh);
    return replaced;
  }

  Opener open_;
  int out_;
  UniqueFd fd_;
};

[[noreturn]] void exec_journalctl(const nlohmann::json& logs, bool follow) {
  std::vector<std::string> args{kJournalctl, "--no-pager", "-o", "cat"};
  if (follow) args.emplace_back("-f");
  // A named copy: iterating a temporary json trips GCC 12's -Wmaybe-uninitialized at -O2.
  const nlohmann::json match = logs.contains("journal_match") ? logs.at("journal_match") : nlohmann::json::object();
  for (const auto& [key, value] : match.items()) {
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
  auto opener = [&client, id = o.task.id()](const std::string& stream) {
    return [&client, id, stream]() -> UniqueFd {
      try {
        return client->open_log(id, stream);
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::not_found && client->inspect(id).is_object()) return {};  // not written yet
        throw;
      }
    };
  };
  std::vector<LogFile> files;
  files.emplace_back(opener("stdout"), STDOUT_FILENO);
  files.emplace_back(opener("stderr"), STDERR_FILENO);
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
