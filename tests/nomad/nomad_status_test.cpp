// Errors as Nomad's agent reads them: the gRPC code, and for StartTask/TaskStats the
// RecoverableError in details[0] of the rich status.
#include <gtest/gtest.h>

#include "google/rpc/status.pb.h"
#include "nomad/status.hpp"
#include "nomad/structs.pb.h"

namespace runscope::nomad {
namespace {

std::optional<bool> recoverable_detail(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details()) || rich.details_size() == 0) return std::nullopt;
  EXPECT_EQ(rich.details(0).type_url(), "type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError");
  EXPECT_EQ(rich.message(), status.error_message());
  EXPECT_EQ(rich.code(), static_cast<int>(status.error_code()));
  hashicorp::nomad::plugins::shared::structs::RecoverableError detail;
  EXPECT_TRUE(rich.details(0).UnpackTo(&detail));
  return detail.recoverable();
}

TEST(ErrorStatus, MarksADaemonThatIsAwayOrBusyRecoverableAndABadSpecNot) {
  auto away = error_status(Error(ErrorKind::bus, "runscoped is not running"), true);
  EXPECT_EQ(away.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(recoverable_detail(away), true);
  EXPECT_EQ(recoverable_detail(error_status(Error(ErrorKind::resources, "no cores"), true)), true);
  // Over its user's quota: the allocation may start once the user's other tasks end.
  auto over = error_status(Error(ErrorKind::quota, "tasks: 5 of 5 in use"), true);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(recoverable_detail(over), true);
  auto bad = error_status(Error(ErrorKind::invalid_argument, "task config: cores: ..."), true);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad.error_message(), "task config: cores: ...");
  EXPECT_EQ(recoverable_detail(bad), false);
  EXPECT_EQ(recoverable_detail(error_status(Error(ErrorKind::unsupported, "no pids controller"), true)), false);
}

TEST(ErrorStatus, CarriesNoDetailOutsideStartAndStatsAndMapsKindsToCodes) {
  auto plain = error_status(Error(ErrorKind::not_found, "task x is not known"));
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(plain.error_details().empty());
  EXPECT_EQ(status_code(ErrorKind::conflict), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status_code(ErrorKind::permission), grpc::StatusCode::PERMISSION_DENIED);
  auto thrown = answer([]() -> grpc::Status { throw std::runtime_error("boom"); });
  EXPECT_EQ(thrown.error_message(), "boom");
}

}  // namespace
}  // namespace runscope::nomad
