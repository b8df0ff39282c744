#include "support/private_bus.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace runscope::testing {
namespace {

constexpr const char* kDbusDaemon = "/usr/bin/dbus-daemon";

constexpr const char* kOpenPolicy = R"(
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
)";

std::string read_line(int fd) {
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

}  // namespace

bool dbus_daemon_available() { return ::access(kDbusDaemon, X_OK) == 0; }

PrivateBus::PrivateBus(const std::string& config_body) {
  auto config = dir_.path() / "bus.conf";
  std::ofstream(config) << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                           " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n"
                        << "  <listen>unix:path=" << socket_path() << "</listen>\n"
                        << (config_body.empty() ? kOpenPolicy : config_body) << "</busconfig>\n";
  // The socket and its folder must be reachable by the unprivileged callers of policy tests.
  ::chmod(dir_.path().c_str(), 0755);
  auto pipe = make_pipe();
  std::string config_arg = "--config-file=" + config.string();
  std::string print_arg = "--print-address=" + std::to_string(pipe.write.get());
  pid_ = ::fork();
  if (pid_ < 0) throw_system_error("fork dbus-daemon");
  if (pid_ == 0) {
    ::fcntl(pipe.write.get(), F_SETFD, 0);  // keep the address pipe across exec
    // Its complaints (it can't raise its fd limit unprivileged) go to a file, not the test log.
    int log = ::open((dir_.path() / "dbus-daemon.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    ::execl(kDbusDaemon, kDbusDaemon, config_arg.c_str(), "--nofork", "--nopidfile", print_arg.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pipe.write.reset();
  address_ = read_line(pipe.read.get());
  if (address_.empty()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    throw Error(ErrorKind::system, "dbus-daemon (" + config.string() + ") printed no address");
  }
}

PrivateBus::~PrivateBus() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

}  // namespace runscope::testing
