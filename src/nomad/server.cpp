#include "nomad/server.hpp"

#include <signal.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "nomad/base_service.hpp"
#include "nomad/driver_service.hpp"
#include "nomad/goplugin_services.hpp"
#include "nomad/log.hpp"

namespace runscope::nomad {
namespace {

namespace fs = std::filesystem;

constexpr auto kShutdownGrace = std::chrono::seconds(2);  // go-plugin's client waits as long
constexpr int kMaxMessageBytes = 16 << 20;

// A folder only this user can enter, holding the socket; removed on the way out.
class SocketDir {
 public:
  SocketDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = (fs::path(tmp && *tmp ? tmp : "/tmp") / "runscope-nomad-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw_system_error("mkdtemp " + templ);
    dir_ = templ;
    if (socket().string().size() >= 108) {
      throw Error(ErrorKind::invalid_argument, "socket path " + socket().string() + " is too long; set a shorter TMPDIR");
    }
  }
  ~SocketDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  SocketDir(const SocketDir&) = delete;
  SocketDir& operator=(const SocketDir&) = delete;
  fs::path socket() const { return dir_ / "plugin.sock"; }

 private:
  fs::path dir_;
};

// SIGTERM as an fd the main loop polls. SIGINT is ignored, as go-plugin's own servers do: a ^C
// at the agent's terminal reaches the whole process group, and the agent stops its plugins itself.
UniqueFd termination_fd() {
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) throw_system_error("blocking SIGTERM");
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) throw_system_error("signalfd");
  return fd;
}

bool versions_include(const char* list, int version) {
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    if (item == std::to_string(version)) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> launch_refusal(const char* (*getenv)(const char*)) {
  const char* cookie = getenv(kCookieKey);
  if (cookie == nullptr || std::string_view(cookie) != kCookieValue) {
    return std::string("runscope-nomad-driver is a Nomad task driver plugin: the Nomad agent starts it from its "
                       "plugin_dir (see docs/nomad.md). It was started without Nomad's ") +
           kCookieKey + ", so it exits.";
  }
  const char* versions = getenv("PLUGIN_PROTOCOL_VERSIONS");
  if (versions != nullptr && *versions != '\0' && !versions_include(versions, kAppProtocol)) {
    return "runscope-nomad-driver speaks plugin protocol version " + std::to_string(kAppProtocol) +
           "; the agent offers only " + versions;
  }
  const char* cert = getenv("PLUGIN_CLIENT_CERT");
  if (cert != nullptr && *cert != '\0') {
    return std::string("runscope-nomad-driver does not support go-plugin's AutoMTLS (PLUGIN_CLIENT_CERT is set); "
                       "Nomad does not enable it for task drivers");
  }
  return std::nullopt;
}

std::string handshake_line(const std::string& socket_path) {
  return std::to_string(kCoreProtocol) + "|" + std::to_string(kAppProtocol) + "|unix|" + socket_path + "|grpc|";
}

int serve(PluginState::Connect connect, std::FILE* out) {
  auto term = termination_fd();  // before gRPC starts threads, so they all inherit the mask
  Lifetime lifetime;
  PluginState state(std::move(connect));
  BaseService base(state);
  DriverService driver(state, lifetime);
  ControllerService controller(lifetime);
  StdioService stdio(lifetime);
  BrokerService broker(lifetime);
  SocketDir dir;

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + dir.socket().string(), grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  for (grpc::Service* service : std::initializer_list<grpc::Service*>{&base, &driver, &controller, &stdio, &broker}) {
    builder.RegisterService(service);
  }
  auto server = builder.BuildAndStart();
  if (!server) throw Error(ErrorKind::system, "gRPC could not listen on " + dir.socket().string());
  server->GetHealthCheckService()->SetServingStatus("plugin", true);
  std::fprintf(out, "%s\n", handshake_line(dir.socket().string()).c_str());
  std::fflush(out);
  log(LogLevel::info, "serving", {{"socket", dir.socket().string()}, {"version", RUNSCOPE_VERSION}});

  pollfd p{term.get(), POLLIN, 0};
  while (!lifetime.wait_for(std::chrono::milliseconds(0))) {
    if (::poll(&p, 1, 200) > 0) {
      log(LogLevel::info, "SIGTERM: stopping");
      lifetime.request_stop();
    }
  }
  server->GetHealthCheckService()->SetServingStatus("plugin", false);
  // Calls still running after the grace period are cancelled; every loop also watches lifetime.
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  log(LogLevel::info, "stopped");
  return 0;
}

}  // namespace runscope::nomad
