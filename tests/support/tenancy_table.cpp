#include "support/tenancy_table.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/client.hpp"
#include "common/error.hpp"
#include "support/held_child.hpp"

namespace runscope::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

int shell(const std::string& command) { return std::system(command.c_str()); }

std::string answer_of(const std::function<std::string()>& call) {
  try {
    return call();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::permission && std::string(e.what()).find("the bus refused") != std::string::npos) {
      return "bus-denied";
    }
    return std::string(to_string(e.kind())) + (e.kind() == ErrorKind::conflict ? std::string(":") + e.what() : "");
  }
}

std::string call_as(const std::string& bus, const driver::Credentials& who,
                    const std::function<std::string(api::ManagerClient&)>& body) {
  return as(who, [&] {
    api::ManagerClient c(bus);
    return body(c);
  });
}

const TaskId kOwn("own", "t");

struct Row {
  std::string method;
  std::function<std::string(api::ManagerClient&)> call;
  std::string root, owner, other, outsider;  // the answer each must get
};

std::string ok(bool detail, const std::string& yes, const std::string& no) { return "ok:" + (detail ? yes : no); }

}  // namespace

std::string system_like_bus_config() {
  return std::string(R"(
  <type>system</type>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>)") + RUNSCOPE_SOURCE_DIR + "/dbus/org.runscope1.conf</include>\n";
}

Members::Members() {
  made_group_ = ::getgrnam("runscope") == nullptr;
  if (made_group_ && shell("groupadd --system runscope") != 0) throw Error(ErrorKind::system, "groupadd");
  for (const char* tag : {"a", "b"}) {
    std::string name = "rs" + std::string(tag) + std::to_string(::getpid());
    if (shell("useradd -M -N -g nogroup -G runscope -s /usr/sbin/nologin " + name) != 0) {
      throw Error(ErrorKind::system, "useradd " + name);
    }
    names_.push_back(name);
  }
}

Members::~Members() {
  for (const auto& n : names_) shell("userdel " + n);
  if (made_group_) shell("groupdel runscope");
}

Callers callers_of(const Members& members) {
  return {driver::Credentials{0, 0, {}}, driver::resolve_credentials(members.owner()),
          driver::resolve_credentials(members.other()), driver::resolve_credentials("nobody")};
}

std::string as(const driver::Credentials& who, const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_system_error("pipe2");
  pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw_system_error("fork", err);  // not on to waitpid(-1): it would reap another test's child
  }
  if (pid == 0) {
    ::close(fds[0]);
    if (::setgroups(who.groups.size(), who.groups.data()) != 0 || ::setresgid(who.gid, who.gid, who.gid) != 0 ||
        ::setresuid(who.uid, who.uid, who.uid) != 0) {
      ::_exit(120);
    }
    std::string out;
    try {
      out = answer_of(body);
    } catch (const std::exception& e) {
      out = std::string("child failed: ") + e.what();
    }
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child failed: status " + std::to_string(status);
  return out;
}

std::string shell_spec_json(const std::string& alloc, const std::string& task, const std::string& script) {
  // Files on both paths (the systemd path's default is the journal), so OpenTaskLog has one to open.
  return nlohmann::json{{"alloc", alloc}, {"task", task}, {"log", {{"target", "file"}}},
                        {"config", {{"command", "/bin/sh"}, {"args", {"-c", script}}}}}.dump();
}

void expect_the_api_table(const std::string& bus, const Callers& who) {
  ASSERT_EQ(call_as(bus, who.owner, [](auto& c) { c.start(shell_spec_json("own", "t", "echo hello; exec sleep 300")); return std::string("ok"); }), "ok");
  {
    api::ManagerClient root(bus);  // the OpenTaskLog row reads what the task printed first
    bool printed = wait_until([&] {
      try {
        auto fd = root.open_log(kOwn, "stdout");
        char c = 0;
        return ::read(fd.get(), &c, 1) == 1;
      } catch (const Error&) {
        return false;
      }
    }, 30s);
    EXPECT_TRUE(printed) << "own/t printed nothing";
  }
  const std::vector<Row> table = {
      {"InspectTask", [](auto& c) { return ok(c.inspect(kOwn)["state"] == "running", "running", "?"); },
       "ok:running", "ok:running", "not found", "bus-denied"},
      {"ListTasks", [](auto& c) {
         auto l = c.list();
         return ok(std::any_of(l.begin(), l.end(), [](auto& t) { return t.alloc == "own"; }), "sees", "blind");
       }, "ok:sees", "ok:sees", "ok:blind", "bus-denied"},
      {"TaskStats", [](auto& c) { return ok(c.stats(kOwn).count("cpu_user_usec") > 0, "stats", "?"); },
       "ok:stats", "ok:stats", "not found", "bus-denied"},
      {"TaskEvents", [](auto& c) { return ok(!c.events(kOwn).empty(), "events", "?"); },
       "ok:events", "ok:events", "not found", "bus-denied"},
      {"TaskLogs", [](auto& c) { return ok(c.logs(kOwn)["target"] == "file", "file", "?"); },
       "ok:file", "ok:file", "not found", "bus-denied"},
      {"OpenTaskLog", [](auto& c) {
         auto fd = c.open_log(kOwn, "stdout");
         char buf[64] = {};
         auto n = ::read(fd.get(), buf, sizeof buf - 1);
         return ok(n > 0, std::string(buf, static_cast<std::size_t>(n > 0 ? n : 0)), "empty");
       }, "ok:hello\n", "ok:hello\n", "not found", "bus-denied"},
      {"EnterTask", [](auto& c) {
         UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
         driver::EnterSpec spec{"sh", {"-c", "exit 3"}, {}, false, {}, {}};
         return "ok:" + std::to_string(c.enter(kOwn, spec, null.get(), null.get(), null.get()));
       }, "ok:3", "ok:3", "not found", "bus-denied"},
      {"SignalTask", [](auto& c) { c.signal(kOwn, SIGCONT); return std::string("ok"); },
       "ok", "ok", "not found", "bus-denied"},
      {"StartTask (its name)", [](auto& c) { c.start(shell_spec_json("own", "t", "true")); return std::string("ok"); },
       "conflict:task own/t exists", "conflict:task own/t exists",
       "conflict:the name own/t is unavailable (its cgroup name \"own-t\" is in use); choose another alloc or task name",
       "bus-denied"},
      {"CpuPool", [](auto& c) { return ok(c.cpu_pool().contains("others"), "counts-only", "all"); },
       "ok:all", "ok:counts-only", "ok:counts-only", "bus-denied"},
      {"Fingerprint", [](auto& c) { return ok(c.fingerprint().count("manager") > 0, "yes", "?"); },
       "ok:yes", "ok:yes", "ok:yes", "bus-denied"},
      {"WatchTasks", [](auto& c) { c.watch([](const api::StateChange&) {}); return std::string("ok"); },
       "ok", "ok", "ok", "bus-denied"},
      {"StopTask (others)", [](auto& c) { c.stop(kOwn, 0s); return std::string("ok"); },
       "skip", "skip", "not found", "bus-denied"},
      {"DestroyTask (others)", [](auto& c) { c.destroy(kOwn); return std::string("ok"); },
       "skip", "skip", "not found", "bus-denied"},
  };
  for (const auto& row : table) {
    const std::pair<const char*, const driver::Credentials*> callers[] = {
        {"root", &who.root}, {"owner", &who.owner}, {"other member", &who.other}, {"outsider", &who.outsider}};
    const std::string* want[] = {&row.root, &row.owner, &row.other, &row.outsider};
    for (std::size_t i = 0; i < 4; ++i) {
      if (*want[i] == "skip") continue;
      EXPECT_EQ(call_as(bus, *callers[i].second, row.call), *want[i]) << row.method << " as " << callers[i].first;
    }
  }
  // The destructive ones last, by the owner and by root.
  EXPECT_EQ(call_as(bus, who.owner, [](auto& c) { c.stop(kOwn, 0s); return std::string("ok"); }), "ok");
  EXPECT_EQ(call_as(bus, who.owner, [](auto& c) { c.destroy(kOwn); return std::string("ok"); }), "ok");
  EXPECT_EQ(call_as(bus, who.root, [](auto& c) { return ok(c.list().empty(), "none left", "?"); }), "ok:none left");
}

// Only root and the owner hear of a task: the other member's watcher, which sees its own task's
// end after the owner's task ended, saw nothing of the owner's (signals come in order).
void expect_signals_only_to_root_and_owner(const std::string& bus, const Callers& who, const fs::path& dir) {
  ASSERT_EQ(call_as(bus, who.owner, [](auto& c) { c.start(shell_spec_json("own", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  ASSERT_EQ(call_as(bus, who.other, [](auto& c) { c.start(shell_spec_json("oth", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  auto watch_until = [&bus](const driver::Credentials& as_who, const std::string& last_alloc, const fs::path& ready) {
    return call_as(bus, as_who, [last_alloc, ready](api::ManagerClient& c) {
      std::string seen;
      bool done = false;
      c.watch([&](const api::StateChange& s) {
        seen += s.alloc + "/" + s.task + ":" + s.state + " ";
        done |= s.alloc == last_alloc && s.state == "killed";
      });
      std::ofstream(ready) << "ready";
      auto deadline = std::chrono::steady_clock::now() + 30s;
      while (!done && std::chrono::steady_clock::now() < deadline) c.pump(200ms);
      return seen;
    });
  };
  auto wait_file = [](const fs::path& p) { return testing::wait_until([&] { return fs::exists(p); }, 30s); };
  ::chmod(dir.c_str(), 0777);  // the watchers say "ready" with a file here
  std::string owner_saw, other_saw, root_saw;
  // A watcher's failure (as() throws, e.g. pipe2) is rethrown here after the joins instead of
  // ending the run in std::terminate; jthreads, so a throw on this thread still joins them.
  std::exception_ptr failed[3];
  auto catching = [](std::exception_ptr& failure, auto body) {
    return [&failure, body] {
      try {
        body();
      } catch (...) {
        failure = std::current_exception();
      }
    };
  };
  std::jthread o(catching(failed[0], [&] { owner_saw = watch_until(who.owner, "own", dir / "o.ready"); }));
  std::jthread x(catching(failed[1], [&] { other_saw = watch_until(who.other, "oth", dir / "x.ready"); }));
  std::jthread r(catching(failed[2], [&] { root_saw = watch_until(who.root, "oth", dir / "r.ready"); }));
  bool ready = wait_file(dir / "o.ready") && wait_file(dir / "x.ready") && wait_file(dir / "r.ready");
  {
    api::ManagerClient root(bus);
    root.stop(TaskId("own", "t"), 0s);
    root.stop(TaskId("oth", "t"), 0s);
  }
  o.join();
  x.join();
  r.join();
  for (const auto& e : failed) {
    if (e) std::rethrow_exception(e);
  }
  EXPECT_TRUE(ready) << "a watcher never said it was ready";
  EXPECT_THAT(owner_saw, HasSubstr("own/t:killed"));
  EXPECT_THAT(other_saw, HasSubstr("oth/t:killed"));
  EXPECT_THAT(other_saw, ::testing::Not(HasSubstr("own/")));
  EXPECT_THAT(owner_saw, ::testing::Not(HasSubstr("oth/")));
  EXPECT_THAT(root_saw, HasSubstr("own/t:killed"));
  EXPECT_THAT(root_saw, HasSubstr("oth/t:killed"));
}

}  // namespace runscope::testing
