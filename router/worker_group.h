// gRPC clients for the tensor-parallel workers of one replica, in rank order:
// the init handshake (Info -> CreateUniqueId on rank 0 -> InitDistributed on
// all at once -> LoadModel -> ProfileMemory -> InitCache) and the per-step
// fan-out of one StepRequest to every rank. Every call has a deadline, so a
// dead or hung rank becomes an UNAVAILABLE error naming it, never a hang.
#ifndef TPSERVE_ROUTER_WORKER_GROUP_H_
#define TPSERVE_ROUTER_WORKER_GROUP_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "common/security/grpc_credentials.h"
#include "proto/worker.grpc.pb.h"

namespace tpserve::router {

// The step token budget the router schedules with and the workers size their
// buffers for: --max-num-batched-tokens, or when 0, max(8192,
// --max-model-len) (8192 when the model length is left to the model; chunked
// prefill makes a larger budget unnecessary).
int ResolvedMaxNumBatchedTokens(const ServerConfig& config);

// What a successful handshake established.
struct GroupInfo {
  // The model as rank 0 loaded it (max_model_len resolved).
  v1::ModelInfo model;
  // KV blocks allocated on every rank (the minimum any rank could hold).
  int num_blocks = 0;
  // "cpu" or "cuda", from rank 0's Info.
  std::string device;
};

// The worker ranks of one model replica.
class WorkerGroup {
 public:
  // Connects lazily to `config.workers` (rank order); the settings the
  // handshake sends come from `config`. INVALID_ARGUMENT without workers.
  static absl::StatusOr<std::unique_ptr<WorkerGroup>> Create(
      const ServerConfig& config);
  // Drains the step completion queue.
  ~WorkerGroup();

  // Runs the whole init handshake. Safe to call again after a failure.
  absl::StatusOr<GroupInfo> Handshake();

  // Sends `request` to every rank in parallel and returns rank 0's answer.
  // UNAVAILABLE naming every failing rank (error or timeout). One caller at
  // a time (the step loop).
  absl::StatusOr<v1::StepResponse> Step(const v1::StepRequest& request);

  // Cancels in-flight calls and makes later ones fail at once: the router is
  // stopping and must not wait out a long LoadModel or a hung step.
  void Abort();

  // Number of ranks.
  int world_size() const { return static_cast<int>(stubs_.size()); }

 private:
  // `tls`: internal mutual TLS material, or null for plaintext.
  WorkerGroup(const ServerConfig& config, const InternalTls* tls);

  // Calls `call(rank, context)` on every rank at once (one thread each), with
  // `timeout_ms`; the first failure becomes an error naming rank and `what`.
  absl::Status CallAll(
      const char* what, int timeout_ms,
      const std::function<grpc::Status(int, grpc::ClientContext*)>& call);
  // Tracks a call's context so that Abort can cancel it; false if aborted.
  bool Register(grpc::ClientContext* context);
  void Unregister(grpc::ClientContext* context);
  // "rank 2 (host:port)".
  std::string RankName(int rank) const;

  const ServerConfig config_;
  std::vector<std::unique_ptr<v1::Worker::Stub>> stubs_;
  // Step goes through the generic API so that the request is serialized
  // once for every rank.
  std::vector<std::unique_ptr<grpc::GenericStub>> generic_stubs_;
  grpc::CompletionQueue step_queue_;
  std::mutex active_mu_;
  std::vector<grpc::ClientContext*> active_;
  bool aborted_ = false;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_WORKER_GROUP_H_
