// The one place where absl::Status and grpc::Status are converted, on every
// side of every RPC. Codes map one to one; messages travel unchanged.
#ifndef TPSERVE_COMMON_GRPC_STATUS_H_
#define TPSERVE_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tpserve {

// Converts an absl::Status into the grpc::Status a service handler returns.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Converts a grpc::Status received by a client into an absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_GRPC_STATUS_H_
