#include "compat/sdbus.hpp"

namespace runscope::compat {

#if RUNSCOPE_SDBUS_MAJOR >= 2

void request_name(sdbus::IConnection& connection, const std::string& name) {
  connection.requestName(sdbus::ServiceName(name));
}

void release_name(sdbus::IConnection& connection, const std::string& name) {
  connection.releaseName(sdbus::ServiceName(name));
}

sdbus::Error make_error(const std::string& name, const std::string& message) {
  return sdbus::Error(sdbus::Error::Name(name), message);
}

bool process_pending(sdbus::IConnection& connection) { return connection.processPendingEvent(); }

PollSet poll_set(const sdbus::IConnection& connection) {
  const auto data = connection.getEventLoopPollData();
  PollSet set;
  set.fds[0] = {data.fd, data.events, 0};
  set.fds[1] = {data.eventFd, POLLIN, 0};
  set.count = 2;
  set.timeout_ms = data.getPollTimeout();
  return set;
}

std::unique_ptr<sdbus::IProxy> make_proxy(sdbus::IConnection& connection, const std::string& service,
                                          const std::string& object_path) {
  return sdbus::createProxy(connection, sdbus::ServiceName(service), sdbus::ObjectPath(object_path));
}

sdbus::MethodCall method_call(sdbus::IProxy& proxy, const std::string& interface, const std::string& method) {
  return proxy.createMethodCall(sdbus::InterfaceName(interface), sdbus::MethodName(method));
}

sdbus::Signal signal(sdbus::IObject& object, const std::string& interface, const std::string& member) {
  return object.createSignal(sdbus::InterfaceName(interface), sdbus::SignalName(member));
}

sdbus::PendingAsyncCall call_async(sdbus::IProxy& proxy, const sdbus::MethodCall& call, ReplyHandler on_reply,
                                   std::uint64_t timeout_usec) {
  return proxy.callMethodAsync(
      call,
      [on_reply = std::move(on_reply)](sdbus::MethodReply reply, std::optional<sdbus::Error> error) {
        on_reply(reply, error ? &*error : nullptr);
      },
      timeout_usec);
}

std::string value_type(const sdbus::Variant& value) { return value.peekValueType(); }

#else

void request_name(sdbus::IConnection& connection, const std::string& name) { connection.requestName(name); }

void release_name(sdbus::IConnection& connection, const std::string& name) { connection.releaseName(name); }

sdbus::Error make_error(const std::string& name, const std::string& message) { return sdbus::Error(name, message); }

bool process_pending(sdbus::IConnection& connection) { return connection.processPendingRequest(); }

sdbus::Signal signal(sdbus::IObject& object, const std::string& interface, const std::string& member) {
  return object.createSignal(interface, member);
}

PollSet poll_set(const sdbus::IConnection& connection) {
  const auto data = connection.getEventLoopPollData();
  PollSet set;
  set.fds[0] = {data.fd, data.events, 0};
  set.count = 1;
  set.timeout_ms = data.getPollTimeout();
  return set;
}

std::unique_ptr<sdbus::IProxy> make_proxy(sdbus::IConnection& connection, const std::string& service,
                                          const std::string& object_path) {
  return sdbus::createProxy(connection, service, object_path);
}

sdbus::MethodCall method_call(sdbus::IProxy& proxy, const std::string& interface, const std::string& method) {
  return proxy.createMethodCall(interface, method);
}

sdbus::PendingAsyncCall call_async(sdbus::IProxy& proxy, const sdbus::MethodCall& call, ReplyHandler on_reply,
                                   std::uint64_t timeout_usec) {
  return proxy.callMethod(call, std::move(on_reply), timeout_usec);
}

std::string value_type(const sdbus::Variant& value) { return value.peekValueType(); }

#endif

}  // namespace runscope::compat
