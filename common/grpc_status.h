// The one place where absl::Status and grpc::Status are converted, on every
// side of every RPC. Codes map one to one; messages travel unchanged; the
// retry hint of a RESOURCE_EXHAUSTED status (an absl payload on this side)
// travels as `retry-after-ms` trailing metadata on the wire.
#ifndef TPSERVE_COMMON_GRPC_STATUS_H_
#define TPSERVE_COMMON_GRPC_STATUS_H_

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace tpserve {

// Trailing metadata key of the retry hint (milliseconds).
inline constexpr char kRetryAfterMsMetadata[] = "retry-after-ms";

// `status` with a hint to retry after `retry_after_ms` (gateway: the HTTP
// Retry-After header; between services: the trailing metadata above).
absl::Status WithRetryAfterMs(absl::Status status, int64_t retry_after_ms);
// The hint attached by WithRetryAfterMs, if any.
std::optional<int64_t> RetryAfterMs(const absl::Status& status);

// Converts an absl::Status into the grpc::Status a service handler returns.
grpc::Status ToGrpcStatus(const absl::Status& status);
// The same, and puts the status's retry hint (if any) into `context`'s
// trailing metadata.
grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase* context);

// Converts a grpc::Status received by a client into an absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);
// The same, with the retry hint read back from the call's trailing metadata
// (a malformed hint is ignored).
absl::Status FromGrpcStatus(const grpc::Status& status, const grpc::ClientContext& context);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_GRPC_STATUS_H_
