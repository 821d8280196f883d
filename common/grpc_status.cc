#include "common/grpc_status.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace tpserve {
namespace {

constexpr char kRetryAfterPayload[] = "type.tpserve/retry-after-ms";

}  // namespace

absl::Status WithRetryAfterMs(absl::Status status, int64_t retry_after_ms) {
  status.SetPayload(kRetryAfterPayload, absl::Cord(std::to_string(retry_after_ms)));
  return status;
}

std::optional<int64_t> RetryAfterMs(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfterPayload);
  int64_t ms = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &ms)) return std::nullopt;
  return ms;
}

// absl::StatusCode and grpc::StatusCode share numeric values (both follow
// google.rpc.Code), which the test pins down code by code.
grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* context) {
  if (auto ms = RetryAfterMs(status)) context->AddTrailingMetadata(kRetryAfterMsMetadata, std::to_string(*ms));
  return ToGrpcStatus(status);
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::Status FromGrpcStatus(const grpc::Status& status, const grpc::ClientContext& context) {
  absl::Status out = FromGrpcStatus(status);
  if (out.ok()) return out;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kRetryAfterMsMetadata);
  int64_t ms = 0;
  if (it != trailers.end() && absl::SimpleAtoi(std::string(it->second.data(), it->second.size()), &ms)) {
    out = WithRetryAfterMs(std::move(out), ms);
  }
  return out;
}

}  // namespace tpserve
