// runscope's one error policy: failures are thrown as runscope::Error (or a subclass),
// carrying a kind (which maps to exit codes and D-Bus error names) and a message that
// names the file, field or value at fault. Destructors and cleanup paths never throw.
#pragma once

#include <cerrno>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace runscope {

enum class ErrorKind {
  invalid_argument,  // bad user input: names, specs, CLI values
  config,            // bad configuration file (exit 78, EX_CONFIG)
  not_found,         // a task, file, binary or unit that does not exist
  unsupported,       // the host lacks what was asked for (a controller, a manager)
  conflict,          // already exists / in the wrong state
  resources,         // not enough cores or similar
  permission,        // denied uid, not root
  timeout,           // a deadline passed
  system,            // a syscall failed; errno is set
  bus,               // D-Bus or systemd said no
  quota,             // a caller's [limits] refuse the request (last: the shim sends kinds by number)
};

std::string_view to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, int err = 0)
      : std::runtime_error(message), kind_(kind), errno_(err) {}
  ErrorKind kind() const noexcept { return kind_; }
  int error_number() const noexcept { return errno_; }

 private:
  ErrorKind kind_;
  int errno_;
};

// Throws Error(system) with "<what>: <strerror(err)>".
[[noreturn]] void throw_system_error(const std::string& what, int err = errno);

// Runs f and returns what it threw (nullptr when nothing). Failures that go to a reply are taken
// with this rather than answered from inside a catch block: the handler has ended by the time the
// exception is handed on, so no thread still ends a catch of an exception another thread may
// already be freeing (libstdc++ counts those references where TSan cannot see them).
template <class F>
std::exception_ptr failure_of(F&& f) noexcept {
  try {
    static_cast<F&&>(f)();
    return nullptr;
  } catch (...) {
    return std::current_exception();
  }
}

}  // namespace runscope
