// The one place where sdbus-c++ 1.x (Debian 12) and 2.x (Debian 13, Fedora 41+) differ for runscope.
// Everything else calls sdbus-c++ through the seams (systemd/bus_link, api/, daemon/bus_daemon,
// tests/support/bus_server.hpp) and, where the two APIs part, through the functions below; no
// other file tests the version. 2.x made names strong types (ServiceName, InterfaceName,
// MethodName, Error::Name: explicit constructors), renamed processPendingRequest to
// processPendingEvent, added an event fd to poll, registers signals at once (no
// finishRegistration), hands async replies as std::optional<Error> instead of Error*, and returns
// the message being handled by value. RUNSCOPE_SDBUS_MAJOR comes from CMake's find_package.
#pragma once

#include <poll.h>

#include <sdbus-c++/sdbus-c++.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#ifndef RUNSCOPE_SDBUS_MAJOR
#error "RUNSCOPE_SDBUS_MAJOR is not set (src/CMakeLists.txt sets it from find_package(sdbus-c++))"
#endif

namespace runscope::compat {

inline constexpr int kSdbusMajor = RUNSCOPE_SDBUS_MAJOR;

// --- names and errors
void request_name(sdbus::IConnection& connection, const std::string& name);
void release_name(sdbus::IConnection& connection, const std::string& name);
sdbus::Error make_error(const std::string& name, const std::string& message);

// --- driving a connection from a loop of our own
// Handles one pending event; false when there is nothing to do until poll(2) says so.
bool process_pending(sdbus::IConnection& connection);
struct PollSet {
  std::array<pollfd, 2> fds{};  // the bus fd, and on 2.x the library's own event fd
  std::size_t count = 0;
  int timeout_ms = -1;  // for poll(2): -1 none, 0 do not block
  bool wants_output() const { return (fds[0].events & POLLOUT) != 0; }
};
PollSet poll_set(const sdbus::IConnection& connection);

// --- client side
std::unique_ptr<sdbus::IProxy> make_proxy(sdbus::IConnection& connection, const std::string& service,
                                          const std::string& object_path);
sdbus::MethodCall method_call(sdbus::IProxy& proxy, const std::string& interface, const std::string& method);
// A signal to fill and emit by hand (one addressed to a single destination, say).
sdbus::Signal signal(sdbus::IObject& object, const std::string& interface, const std::string& member);
// Called once, on the connection's loop thread: `error` is null on success.
using ReplyHandler = std::function<void(sdbus::MethodReply& reply, const sdbus::Error* error)>;
sdbus::PendingAsyncCall call_async(sdbus::IProxy& proxy, const sdbus::MethodCall& call, ReplyHandler on_reply,
                                   std::uint64_t timeout_usec);

// The first parameter of a convenience `uponReplyInvoke` callback, and the error it carries.
#if RUNSCOPE_SDBUS_MAJOR >= 2
using AsyncError = std::optional<sdbus::Error>;
inline const sdbus::Error* error_of(const AsyncError& error) { return error ? &*error : nullptr; }
#else
using AsyncError = const sdbus::Error*;
inline const sdbus::Error* error_of(AsyncError error) { return error; }
#endif

// Subscribes `handler` to `signal` of `interface` on `proxy`; delivered from the next loop turn.
template <typename Handler>
void on_signal(sdbus::IProxy& proxy, const char* interface, const char* signal, Handler&& handler) {
  proxy.uponSignal(signal).onInterface(interface).call(std::forward<Handler>(handler));
#if RUNSCOPE_SDBUS_MAJOR < 2
  proxy.finishRegistration();  // 2.x registers in call()
#endif
}

// --- values
// The D-Bus signature of what `value` holds ("s", "au", ...).
std::string value_type(const sdbus::Variant& value);

// --- server side
// Runs `read(const sdbus::Message&)` on the message `object` is handling now (a method call on
// the loop thread). Throws sdbus::Error when there is none.
template <typename Read>
auto with_current_message(const sdbus::IObject& object, Read read) {
#if RUNSCOPE_SDBUS_MAJOR >= 2
  const sdbus::Message message = object.getCurrentlyProcessedMessage();
  return read(message);
#else
  const sdbus::Message* message = object.getCurrentlyProcessedMessage();
  if (message == nullptr) throw make_error("org.freedesktop.DBus.Error.Failed", "no message is being handled");
  return read(*message);
#endif
}

}  // namespace runscope::compat
