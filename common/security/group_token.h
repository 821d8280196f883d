// The worker group token: proof that a call to a worker comes from the router
// that formed its group (or from rank 0 relaying that router's steps).
//
// The router draws a fresh random token for every handshake and sends it in
// InitDistributedRequest.group_token; from then on the worker refuses
// LoadModel, ProfileMemory, InitCache and StepStream calls whose metadata do
// not carry it, before touching any state, so a stray or forged call cannot
// replace the router's step stream or desynchronise the ranks. It is not a
// substitute for mutual TLS (a peer that can read the plaintext traffic can
// read the token); it is what keeps the group intact on plaintext links.
#ifndef TPSERVE_COMMON_SECURITY_GROUP_TOKEN_H_
#define TPSERVE_COMMON_SECURITY_GROUP_TOKEN_H_

#include <string>
#include <string_view>

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include "absl/status/status.h"

namespace tpserve {

// The metadata key that carries the token.
inline constexpr char kGroupTokenKey[] = "tpserve-group-token";

// 32 lowercase hex digits (128 bits) from the operating system's random
// source.
std::string NewGroupToken();

// Whether `token` has the form NewGroupToken makes (what a worker accepts
// in InitDistributed): 32 to 128 characters of [0-9a-f].
absl::Status ValidateGroupToken(std::string_view token);

// Adds `token` to the call's metadata (no-op when empty).
void AttachGroupToken(grpc::ClientContext* context, std::string_view token);

// OK when `expected` is empty (no group formed yet) or the call's metadata
// carries it; PermissionDenied naming `call` otherwise. Constant-time in the
// token's bytes.
absl::Status CheckGroupToken(const grpc::ServerContextBase& context, std::string_view expected,
                             std::string_view call);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SECURITY_GROUP_TOKEN_H_
