#include "nomad/status.hpp"

#include "google/rpc/status.pb.h"
#include "nomad/structs.pb.h"

namespace runscope::nomad {

bool recoverable(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::resources:  // cores taken, the daemon's queue full
    case ErrorKind::quota:      // the user's limit; frees up as its other tasks end
    case ErrorKind::bus:        // runscoped not running (bus_daemon.cpp makes that kind bus)
    case ErrorKind::timeout:
    case ErrorKind::system:
      return true;
    default:
      return false;
  }
}

grpc::StatusCode status_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_argument:
    case ErrorKind::config: return grpc::StatusCode::INVALID_ARGUMENT;
    case ErrorKind::not_found: return grpc::StatusCode::NOT_FOUND;
    case ErrorKind::unsupported: return grpc::StatusCode::UNAVAILABLE;
    case ErrorKind::conflict: return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorKind::resources:
    case ErrorKind::quota: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ErrorKind::permission: return grpc::StatusCode::PERMISSION_DENIED;
    case ErrorKind::timeout: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case ErrorKind::system:
    case ErrorKind::bus: return grpc::StatusCode::UNAVAILABLE;
  }
  return grpc::StatusCode::UNKNOWN;
}

grpc::Status error_status(const Error& error, bool with_recoverable) {
  auto code = status_code(error.kind());
  if (!with_recoverable) return grpc::Status(code, error.what());
  // Nomad's own drivers use FAILED_PRECONDITION for every such error; the agent reads only the
  // detail, so the code stays the one that says what went wrong.
  hashicorp::nomad::plugins::shared::structs::RecoverableError detail;
  detail.set_recoverable(recoverable(error.kind()));
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  rich.set_message(error.what());
  rich.add_details()->PackFrom(detail);
  return grpc::Status(code, error.what(), rich.SerializeAsString());
}

}  // namespace runscope::nomad
