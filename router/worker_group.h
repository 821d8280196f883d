// gRPC clients for the tensor-parallel workers of one replica, in rank order:
// the init handshake (Info -> CreateUniqueId on rank 0 -> InitDistributed on
// all at once -> LoadModel -> ProfileMemory -> InitCache), then one
// long-lived StepStream to rank 0 that carries every step: rank 0 relays each
// step to the other ranks and answers for all of them, so a step costs one
// message each way whatever the TP size, and the next step can be written
// while one is still running. Every wait is bounded, so a dead or hung rank
// becomes an UNAVAILABLE error naming it, never a hang.
#ifndef TPSERVE_ROUTER_WORKER_GROUP_H_
#define TPSERVE_ROUTER_WORKER_GROUP_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/security/grpc_credentials.h"
#include "proto/worker.grpc.pb.h"

namespace tpserve::router {

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
  // Closes the step streams and drains the completion queue.
  ~WorkerGroup();

  // Runs the whole init handshake (closing an earlier group's step stream
  // first; rank 0's InitCache names the ranks it relays to) and opens the
  // step stream. Safe to call again after a failure.
  absl::StatusOr<GroupInfo> Handshake();

  // Writes `request` to rank 0's step stream (which relays it) and returns
  // without waiting; answers come from Receive, oldest step first.
  // UNAVAILABLE when the stream is closed (a failure since the last
  // Handshake, or Abort). Send, Receive and Step belong to one thread (the
  // step loop).
  absl::Status Send(const v1::StepRequest& request);
  // Waits for the group's answer to the oldest step sent. UNAVAILABLE naming
  // every failing rank: an error answer (rank 0 names another rank that
  // failed, ended its stream, sampled different tokens, or did not answer
  // within --worker-step-timeout-ms of when it could start the step), a
  // closed stream, or rank 0 silent for 1.5x that. After a failure the
  // stream is closed until the next Handshake.
  absl::Status Receive(v1::StepResponse* answer);
  // Send, then Receive (one step, nothing else in flight).
  absl::StatusOr<v1::StepResponse> Step(const v1::StepRequest& request);
  // Steps sent and not yet received.
  int num_in_flight() const { return static_cast<int>(in_flight_.size()); }

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

  // This group's token (fresh per Handshake), on every call to the workers.
  std::string group_token_;
  // Rank 0's step stream (driven by worker_group_steps.cc).
  struct RankStream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
    // The message being written (front) and those queued behind it.
    std::deque<grpc::ByteBuffer> writes;
    bool writing = false;
    bool reading = false;
    bool started = false;
    grpc::ByteBuffer incoming;
    // Answers received and not yet consumed, oldest first.
    std::deque<grpc::ByteBuffer> answers;
    // Operations the completion queue has yet to return.
    int pending_ops = 0;
    // The stream is over (a failed read, write or start, or cancelled);
    // `status` is final once `finished`.
    bool failed = false;
    bool finishing = false;
    bool finished = false;
    grpc::Status status;
  };
  // Opens rank 0's step stream and waits (bounded) until it started.
  absl::Status OpenStream();
  // How long Receive waits for rank 0's answer.
  absl::Duration AnswerTimeout() const;
  // Cancels the step stream and waits until the completion queue has
  // returned every operation on it; forgets the steps in flight.
  void CloseStream();
  // Handles one completion-queue event; false when `deadline` came first.
  bool Pump(std::chrono::system_clock::time_point deadline);
  void StartWrite();
  void StartRead();
  // The stream failed (or was cancelled): fetch its final status.
  void MarkFailed();
  // Parses the oldest answer into `answer`; why it is not a good answer to
  // step `step_id`, or "".
  std::string AnswerFailure(uint64_t step_id, v1::StepResponse* answer);

  const ServerConfig config_;
  std::vector<std::unique_ptr<v1::Worker::Stub>> stubs_;
  // Steps go through the generic API so that a request is serialized once
  // for every rank.
  std::vector<std::unique_ptr<grpc::GenericStub>> generic_stubs_;
  grpc::CompletionQueue step_queue_;
  std::unique_ptr<RankStream> stream_;
  // Why the stream is unusable (a failure since the last Handshake).
  std::string closed_reason_ = "no step stream yet: the handshake has not run";
  // Steps sent and not yet received, oldest first.
  struct InFlight {
    uint64_t step_id = 0;
    absl::Time sent;
  };
  std::deque<InFlight> in_flight_;
  // When the last step's answers were all in (the workers run steps in
  // order, so the next one's clock starts there at the earliest).
  absl::Time last_answer_;
  std::mutex active_mu_;
  std::vector<grpc::ClientContext*> active_;
  bool aborted_ = false;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_WORKER_GROUP_H_
