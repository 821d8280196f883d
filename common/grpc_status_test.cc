#include "common/grpc_status.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

TEST(GrpcStatusTest, EveryCodeMapsBothWays) {
  const std::vector<std::pair<absl::StatusCode, grpc::StatusCode>> pairs = {
      {absl::StatusCode::kOk, grpc::StatusCode::OK},
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
      {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
      {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
      {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
      {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
      {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const auto& [absl_code, grpc_code] : pairs) {
    absl::Status s(absl_code, absl_code == absl::StatusCode::kOk ? "" : "why");
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(g.error_code(), grpc_code) << s;
    absl::Status back = FromGrpcStatus(g);
    EXPECT_EQ(back.code(), absl_code);
    EXPECT_EQ(back.message(), s.message());
  }
}

TEST(GrpcStatusTest, RetryHintRoundTrip) {
  absl::Status s = WithRetryAfterMs(absl::ResourceExhaustedError("queue full"), 1500);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "queue full");
  EXPECT_EQ(RetryAfterMs(s), 1500);
  EXPECT_EQ(RetryAfterMs(absl::ResourceExhaustedError("no hint")), std::nullopt);
  // A server context gets the hint as trailing metadata; the status itself
  // converts as without it.
  grpc::ServerContext context;
  grpc::Status g = ToGrpcStatus(s, &context);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(g.error_message(), "queue full");
}

TEST(GrpcStatusTest, MessageSurvives) {
  grpc::Status g = ToGrpcStatus(absl::ResourceExhaustedError("queue full: 256 waiting"));
  EXPECT_EQ(g.error_message(), "queue full: 256 waiting");
}

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  TP_ASSIGN_OR_RETURN(int h, Half(x));
  TP_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  TP_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(3).ok());
}

}  // namespace
}  // namespace tpserve
