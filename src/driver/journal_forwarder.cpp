#include "driver/journal_forwarder.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "driver/log_sink.hpp"
#include "driver/spawn.hpp"

namespace runscope::driver {
namespace {

constexpr int kJournalInfo = 6, kJournalErr = 3;
// How long the forwarder waits, once the task has ended, for journald to take its last lines.
constexpr std::chrono::milliseconds kSentGrace{2000};
constexpr const char* kSelf = "/proc/self/exe";  // the shim's own binary, whatever its path now

// The forwarder gets no environment but the sanitizers' options, so that the ASan and TSan builds
// check it and report where the tests look (runscoped's environment holds none of them).
std::vector<std::string> sanitizer_options() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    for (std::string_view name : {"ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS=", "TSAN_OPTIONS="})
      if (entry.starts_with(name)) out.emplace_back(entry);
  }
  return out;
}

}  // namespace

int run_journal_forwarder(int argc, char** argv) {
  if (argc != kForwarderArgs || std::strcmp(argv[1], kForwarderFlag) != 0) return 2;
  // Nothing here is secret, but a task of the same uid has no business in its memory either.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::prctl(PR_SET_NAME, "runscope-log", 0, 0, 0);
  auto out_sink = std::make_unique<JournalLines>(argv[2], argv[3], kJournalInfo, argv[4]);
  auto err_sink = std::make_unique<JournalLines>(argv[2], argv[3], kJournalErr, argv[4]);
  const JournalLines& out_lines = *out_sink;
  const JournalLines& err_lines = *err_sink;
  LogStream out{UniqueFd(0), std::move(out_sink)}, err{UniqueFd(1), std::move(err_sink)};
  pump_until(2, out, err);
  out_lines.wait_sent(kSentGrace);
  err_lines.wait_sent(kSentGrace);
  return 0;
}

JournalForwarder JournalForwarder::start(const ForwarderSpec& spec, int out_read, int err_read,
                                         cgroup::TaskCgroup* cg) {
  Pipe ended = make_pipe();
  SpawnSpec s;
  s.path = kSelf;
  s.argv = {"runscope-shim", kForwarderFlag, spec.alloc, spec.task, spec.socket_path};
  s.env = sanitizer_options();
  s.cwd = "/";
  s.credentials = spec.credentials;
  s.stdio_fds = {out_read, err_read, ended.read.get()};
  try {
    Process p = CloneSpawner().spawn(s, cg);
    return JournalForwarder(std::move(p), std::move(ended.write));
  } catch (const Error& e) {
    throw Error(e.kind(), "cannot start the journal forwarder of task " + spec.task + ": " + e.what(),
                e.error_number());
  }
}

void JournalForwarder::finish(std::chrono::milliseconds grace) {
  ended_.reset();
  if (!process_.valid() || process_.reaped()) return;
  SteadyClock clock;
  if (!process_.wait(Deadline(clock, grace))) {
    process_.signal(SIGKILL);
    process_.reap();
  }
}

}  // namespace runscope::driver
