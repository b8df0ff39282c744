// dbus/org.runscope1.conf on a system-like private dbus-daemon (deny by default, as system.conf):
// an unprivileged caller is refused by the bus; a member of group runscope gets through and the
// service sees its own uid. The adaptor runs over the in-memory TaskService (the rules tested
// here are the bus's and the credentials'; the TaskManager's caller rules have their own tests).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat/sdbus.hpp"
#include "driver/credentials.hpp"
#include "support/bus_server.hpp"
#include "support/held_child.hpp"
#include "support/private_bus.hpp"
#include "support/tenancy_table.hpp"

namespace runscope {
namespace {

constexpr const char* kGroup = "runscope";

int shell(const std::string& command) { return std::system(command.c_str()); }

// A throwaway member of group runscope (the group too, if this host has none); both removed.
class Accounts {
 public:
  Accounts() : user_("rst" + std::to_string(::getpid())) {
    made_group_ = ::getgrnam(kGroup) == nullptr;
    if (made_group_ && shell(std::string("groupadd --system ") + kGroup) != 0) throw Error(ErrorKind::system, "groupadd");
    if (shell("useradd -M -N -g nogroup -G " + std::string(kGroup) + " -s /usr/sbin/nologin " + user_) != 0) {
      cleanup();
      throw Error(ErrorKind::system, "useradd " + user_);
    }
    made_user_ = true;
  }
  ~Accounts() { cleanup(); }
  const std::string& member() const { return user_; }

 private:
  void cleanup() {
    if (made_user_) shell("userdel " + user_);
    if (made_group_) shell(std::string("groupdel ") + kGroup);
    made_user_ = made_group_ = false;
  }
  std::string user_;
  bool made_group_ = false, made_user_ = false;
};

struct Outcome {
  int code = -1;
  std::string err;
};

// Runs the real CLI as `who` (uid, gid and groups dropped before exec), stderr captured.
Outcome run_cli_as(const driver::Credentials& who, const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_system_error("pipe2");
  std::vector<std::string> argv{RUNSCOPE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> raw;
  for (auto& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    if (::setgroups(who.groups.size(), who.groups.data()) != 0 || ::setgid(who.gid) != 0 || ::setuid(who.uid) != 0) {
      ::_exit(120);
    }
    ::execv(raw[0], raw.data());
    ::_exit(121);
  }
  ::close(fds[1]);
  Outcome out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.err.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

TEST(TheBusPolicy, RefusesStrangersAndLetsGroupMembersCallAsThemselves) {
  if (!testing::is_root()) GTEST_SKIP() << "needs root to add a user and drop privileges";
  if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
  if (::access("/usr/sbin/useradd", X_OK) != 0) GTEST_SKIP() << "useradd is not installed";
  Accounts accounts;
  testing::PrivateBus bus(testing::system_like_bus_config());
  testing::FakeTaskService service;
  testing::BusServer server(bus.address(), service);  // root may own the name

  auto stranger = run_cli_as(driver::resolve_credentials("nobody"), {"--bus", bus.address(), "ps"});
  EXPECT_EQ(stranger.code, 126) << stranger.err;
  EXPECT_NE(stranger.err.find("the bus refused the call"), std::string::npos) << stranger.err;
  EXPECT_FALSE(service.last_caller());

  auto member = driver::resolve_credentials(accounts.member());
  auto started = run_cli_as(member, {"--bus", bus.address(), "run", "--alloc", "p", "--task", "t", "--", "/bin/true"});
  EXPECT_EQ(started.code, 0) << started.err;
  ASSERT_TRUE(service.last_caller());
  EXPECT_EQ(service.last_caller()->uid, member.uid);  // from the bus, not from anything it sent
  EXPECT_EQ(run_cli_as(member, {"--bus", bus.address(), "ps"}).code, 0);
}

TEST(TheBusPolicy, LetsOnlyRootOwnTheName) {
  if (!testing::is_root()) GTEST_SKIP() << "needs root to drop privileges";
  if (!testing::dbus_daemon_available()) GTEST_SKIP() << "dbus-daemon is not installed";
  testing::PrivateBus bus(testing::system_like_bus_config());
  auto nobody = driver::resolve_credentials("nobody");
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(nobody.gid) != 0 || ::setuid(nobody.uid) != 0) ::_exit(120);
    try {
      auto connection = api::connect_bus(bus.address());
      compat::request_name(*connection, api::kBusName);
      ::_exit(0);  // owned: the policy failed
    } catch (const sdbus::Error&) {
      ::_exit(1);
    } catch (...) {
      ::_exit(2);
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
}

}  // namespace
}  // namespace runscope
