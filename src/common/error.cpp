#include "common/error.hpp"

#include <cstring>

namespace runscope {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_argument: return "invalid argument";
    case ErrorKind::config: return "configuration error";
    case ErrorKind::not_found: return "not found";
    case ErrorKind::unsupported: return "unsupported";
    case ErrorKind::conflict: return "conflict";
    case ErrorKind::resources: return "not enough resources";
    case ErrorKind::permission: return "permission denied";
    case ErrorKind::timeout: return "timed out";
    case ErrorKind::system: return "system error";
    case ErrorKind::bus: return "bus error";
    case ErrorKind::quota: return "over quota";
  }
  return "error";
}

void throw_system_error(const std::string& what, int err) {
  throw Error(ErrorKind::system, what + ": " + std::strerror(err), err);
}

}  // namespace runscope
