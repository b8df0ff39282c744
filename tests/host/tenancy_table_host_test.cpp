// Issue 12 point 6, through the real runscoped on this host's cgroupfs (v1), on a system-like
// private bus with the project's policy (dbus/org.runscope1.conf): every API method x {root, the
// task's owner, another member, an outsider} and the answer each must get; then the signals (only
// root and the owner hear of a task), the private state on disk, and [limits] with a reload.
// Each caller is a child that has become that user and talks to the daemon with the real client.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <fstream>
#include <thread>

#include "api/client.hpp"
#include "common/file.hpp"
#include "driver/credentials.hpp"
#include "support/daemon_process.hpp"
#include "support/held_child.hpp"
#include "support/manager_fixture.hpp"
#include "support/private_bus.hpp"

namespace runscope {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

int shell(const std::string& command) { return std::system(command.c_str()); }

// The parts of the stock system.conf that matter: deny method calls unless a policy allows.
std::string system_like_config() {
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

// Two throwaway members of group runscope (the group too, if this host has none); removed after.
class Members {
 public:
  Members() {
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
  ~Members() {
    for (const auto& n : names_) shell("userdel " + n);
    if (made_group_) shell("groupdel runscope");
  }
  const std::string& owner() const { return names_.at(0); }
  const std::string& other() const { return names_.at(1); }

 private:
  std::vector<std::string> names_;
  bool made_group_ = false;
};

// What a call got, in the table's words: "ok" (or "ok:DETAIL"), "bus-denied" (the bus refused
// it), or the daemon's error kind ("not found", "conflict", "quota", ...).
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

// Runs `body` in a child that has become `who` (groups, gid, uid dropped) and returns what it
// returned, or "child failed: ..." (ready, when given, is written to once the body says so).
std::string as(const driver::Credentials& who, const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_system_error("pipe2");
  pid_t pid = ::fork();
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

std::string spec(const std::string& alloc, const std::string& task, const std::string& script) {
  return nlohmann::json{{"alloc", alloc}, {"task", task},
                        {"config", {{"command", "/bin/sh"}, {"args", {"-c", script}}}}}.dump();
}

class ASharedRunscoped : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::manager_host_skip_reason()) GTEST_SKIP() << *why;
    if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
    if (::access("/usr/sbin/useradd", X_OK) != 0) GTEST_SKIP() << "useradd is not installed";
    members_.emplace();
    env_.emplace(testing::make_v1_env("tbl"));
    bus_ = std::make_unique<testing::PrivateBus>(system_like_config());
    notify_ = std::make_unique<testing::NotifySocket>(tmp_.path());
    ::chmod(tmp_.path().c_str(), 0755);  // the state dir below is runscoped's to make
    config_ = tmp_.path() / "runscope.toml";
    write_config(2);
    daemon_ = std::make_unique<testing::DaemonProcess>(bus_->address(), config_, tmp_.path() / "daemon.log", *notify_);
    ASSERT_TRUE(notify_->wait_for("READY=1", 30s)) << log();
    root_ = driver::Credentials{0, 0, {}};
    owner_ = driver::resolve_credentials(members_->owner());
    other_ = driver::resolve_credentials(members_->other());
    outsider_ = driver::resolve_credentials("nobody");
  }
  void TearDown() override {
    if (!env_) return;
    if (daemon_) {
      api::ManagerClient root(bus_->address());
      for (const auto& t : root.list()) {
        if (t.state == "running") root.stop(TaskId(t.alloc, t.task), 0s);
      }
      daemon_.reset();
    }
    bus_.reset();
    testing::reap_zombies();
    env_->remove_parent();
  }
  // [limits] tasks = `tasks` for every member.
  void write_config(int tasks) {
    std::ofstream(config_) << "[cgroups]\nmanager = \"cgroupfs\"\nparent = \"" << env_->parent << "\"\n"
                           << "[daemon]\nstate_dir = \"" << state_dir().string() << "\"\n"
                           << "[limits]\ntasks = " << tasks << "\n";
  }
  fs::path state_dir() const { return tmp_.path() / "state"; }
  std::string log() { return read_file_if_exists(tmp_.path() / "daemon.log").value_or(""); }
  api::ManagerClient client() const { return api::ManagerClient(bus_->address()); }
  std::string call_as(const driver::Credentials& who, const std::function<std::string(api::ManagerClient&)>& body) {
    return as(who, [&] {
      api::ManagerClient c(bus_->address());
      return body(c);
    });
  }

  std::optional<Members> members_;
  std::optional<testing::V1Env> env_;
  testing::TempDir tmp_;
  fs::path config_;
  std::unique_ptr<testing::PrivateBus> bus_;
  std::unique_ptr<testing::NotifySocket> notify_;
  std::unique_ptr<testing::DaemonProcess> daemon_;
  driver::Credentials root_, owner_, other_, outsider_;
};

const TaskId kOwn("own", "t");

struct Row {
  std::string method;
  std::function<std::string(api::ManagerClient&)> call;
  std::string root, owner, other, outsider;  // the answer each must get
};

std::string ok(bool detail, const std::string& yes, const std::string& no) { return "ok:" + (detail ? yes : no); }

TEST_F(ASharedRunscoped, AnswersEveryMethodAsTheTableSaysForEachKindOfCaller) {
  ASSERT_EQ(call_as(owner_, [](auto& c) { c.start(spec("own", "t", "echo hello; exec sleep 300")); return std::string("ok"); }), "ok")
      << log();
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
      {"SignalTask", [](auto& c) { c.signal(kOwn, SIGCONT); return std::string("ok"); },
       "ok", "ok", "not found", "bus-denied"},
      {"StartTask (its name)", [](auto& c) { c.start(spec("own", "t", "true")); return std::string("ok"); },
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
        {"root", &root_}, {"owner", &owner_}, {"other member", &other_}, {"outsider", &outsider_}};
    const std::string* want[] = {&row.root, &row.owner, &row.other, &row.outsider};
    for (std::size_t i = 0; i < 4; ++i) {
      if (*want[i] == "skip") continue;
      EXPECT_EQ(call_as(*callers[i].second, row.call), *want[i]) << row.method << " as " << callers[i].first;
    }
  }
  // The destructive ones last, by the owner and by root.
  EXPECT_EQ(call_as(owner_, [](auto& c) { c.stop(kOwn, 0s); return std::string("ok"); }), "ok");
  EXPECT_EQ(call_as(owner_, [](auto& c) { c.destroy(kOwn); return std::string("ok"); }), "ok");
  EXPECT_EQ(call_as(root_, [](auto& c) { return ok(c.list().empty(), "none left", "?"); }), "ok:none left");
}

// Only root and the owner hear of a task: the other member's watcher, which sees its own task's
// end after the owner's task ended, saw nothing of the owner's (signals come in order).
TEST_F(ASharedRunscoped, TellsOnlyRootAndTheOwnerOfATasksChanges) {
  ASSERT_EQ(call_as(owner_, [](auto& c) { c.start(spec("own", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  ASSERT_EQ(call_as(other_, [](auto& c) { c.start(spec("oth", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  auto watch_until = [this](const driver::Credentials& who, const std::string& last_alloc, const fs::path& ready) {
    return call_as(who, [last_alloc, ready](api::ManagerClient& c) {
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
  ::chmod(tmp_.path().c_str(), 0777);  // the watchers say "ready" with a file here
  std::string owner_saw, other_saw, root_saw;
  std::thread o([&] { owner_saw = watch_until(owner_, "own", tmp_.path() / "o.ready"); });
  std::thread x([&] { other_saw = watch_until(other_, "oth", tmp_.path() / "x.ready"); });
  std::thread r([&] { root_saw = watch_until(root_, "oth", tmp_.path() / "r.ready"); });
  bool ready = wait_file(tmp_.path() / "o.ready") && wait_file(tmp_.path() / "x.ready") && wait_file(tmp_.path() / "r.ready");
  {
    auto root = client();
    root.stop(TaskId("own", "t"), 0s);
    root.stop(TaskId("oth", "t"), 0s);
  }
  o.join();
  x.join();
  r.join();
  ASSERT_TRUE(ready);
  EXPECT_THAT(owner_saw, HasSubstr("own/t:killed"));
  EXPECT_THAT(other_saw, HasSubstr("oth/t:killed"));
  EXPECT_THAT(other_saw, ::testing::Not(HasSubstr("own/")));
  EXPECT_THAT(owner_saw, ::testing::Not(HasSubstr("oth/")));
  EXPECT_THAT(root_saw, HasSubstr("own/t:killed"));
  EXPECT_THAT(root_saw, HasSubstr("oth/t:killed"));
}

// Issue 12 point 2: what runscoped made is root's alone on disk; the owner reads its log anyway.
TEST_F(ASharedRunscoped, KeepsItsStateFromEveryoneButRoot) {
  ASSERT_EQ(call_as(owner_, [](auto& c) { c.start(spec("own", "t", "echo hello; exec sleep 300")); return std::string("ok"); }), "ok");
  for (const fs::path& dir : {state_dir(), state_dir() / "tasks", state_dir() / "tasks" / "own-t"}) {
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << dir;
    EXPECT_EQ(st.st_uid, 0u) << dir;
  }
  fs::path out = state_dir() / "tasks" / "own-t" / "stdout.log";
  EXPECT_EQ(as(owner_, [&] { return std::to_string(::open(out.c_str(), O_RDONLY) >= 0); }), "0");
  EXPECT_EQ(as(owner_, [&] { return std::to_string(::opendir((state_dir() / "tasks").c_str()) != nullptr); }), "0");
  EXPECT_TRUE(testing::wait_until([&] { return read_file_if_exists(out).value_or("") == "hello\n"; }, 10s));
}

// [limits] at the real daemon, and `systemctl reload` (SIGHUP) applying new ones to new starts.
TEST_F(ASharedRunscoped, RefusesAStartOverTheCallersLimitsUntilAReloadRaisesThem) {
  for (const char* alloc : {"q1", "q2"}) {
    ASSERT_EQ(call_as(owner_, [alloc](auto& c) { c.start(spec(alloc, "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  }
  std::string why;
  auto third = call_as(owner_, [&](auto& c) {
    try {
      c.start(spec("q3", "t", "exec sleep 300"));
      return std::string("ok");
    } catch (const Error& e) {
      return std::string(to_string(e.kind())) + ": " + e.what();
    }
  });
  EXPECT_THAT(third, HasSubstr("quota"));
  EXPECT_THAT(third, HasSubstr("tasks"));
  EXPECT_THAT(third, HasSubstr("2"));
  EXPECT_EQ(client().list().size(), 2u) << "a refused start left a task";
  EXPECT_EQ(call_as(other_, [](auto& c) { c.start(spec("q4", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
  write_config(3);
  daemon_->process().signal(SIGHUP);
  auto said = notify_->wait_for("READY=1", 30s);
  ASSERT_TRUE(said) << log();
  EXPECT_THAT(*said, HasSubstr("[limits]"));
  EXPECT_EQ(call_as(owner_, [](auto& c) { c.start(spec("q3", "t", "exec sleep 300")); return std::string("ok"); }), "ok");
}

}  // namespace
}  // namespace runscope
