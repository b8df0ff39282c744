// runscope errors as gRPC statuses Nomad understands. StartTask and TaskStats failures carry
// Nomad's RecoverableError in the status details (details[0]), so the agent retries what can
// succeed later (the daemon is restarting, the cores are taken) and gives up on a bad config.
#pragma once

#include <grpcpp/support/status.h>

#include <exception>
#include <string>

#include "common/error.hpp"

namespace runscope::nomad {

// Whether the same request may succeed later without a change by the operator.
bool recoverable(ErrorKind kind);

grpc::StatusCode status_code(ErrorKind kind);

// The status for a runscope Error; with_recoverable adds the RecoverableError detail.
grpc::Status error_status(const Error& error, bool with_recoverable = false);

// Runs `body` and turns what it throws into a status: every handler goes through here, so
// nothing escapes into gRPC's threads.
template <typename Body>
grpc::Status answer(Body body, bool with_recoverable = false) {
  try {
    return body();
  } catch (const Error& e) {
    return error_status(e, with_recoverable);
  } catch (const std::exception& e) {
    return error_status(Error(ErrorKind::system, e.what()), with_recoverable);
  }
}

}  // namespace runscope::nomad
