// An in-process Worker gRPC service with a deterministic toy model (next
// token = hash of the last one, see ToyWorkerState), for router tests and
// the router benchmark. Faults can be injected: failing steps, hanging
// steps, being shut down mid-step.
#ifndef TPSERVE_ROUTER_TESTING_FAKE_WORKER_H_
#define TPSERVE_ROUTER_TESTING_FAKE_WORKER_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "proto/worker.grpc.pb.h"
#include "router/testing/toy_worker_state.h"
#include "worker/service/step_stream_server.h"

namespace tpserve::router::testing {

// What the fake worker reports and how strict it is.
struct FakeWorkerOptions {
  int vocab_size = 1000;
  int max_model_len = 256;
  std::vector<int32_t> eos_token_ids;
  std::string fingerprint = "toy-model";
  // KV blocks ProfileMemory reports.
  int num_blocks = 512;
  // Check every step against the contract (ToyWorkerState); off for the
  // benchmark, where the worker must cost nothing.
  bool strict = true;
  // Port to listen on; 0 picks a free one. A fixed port lets a test restart
  // a "crashed" worker at the same address.
  int port = 0;
};

// A Worker service plus the gRPC server that runs it on 127.0.0.1.
class FakeWorker final : public v1::Worker::Service {
 public:
  // Starts serving on a free port.
  static absl::StatusOr<std::unique_ptr<FakeWorker>> Start(
      FakeWorkerOptions options);
  ~FakeWorker() override;

  // "127.0.0.1:port".
  std::string address() const;
  // Stops serving at once, cancelling in-flight calls (a worker dying).
  void Kill();

  // From the next Step on, answer steps with UNAVAILABLE.
  void set_fail_steps(bool fail) { fail_steps_ = fail; }
  // From the next Step on, block until the caller gives up.
  void set_hang_steps(bool hang) { hang_steps_ = hang; }
  // Sleep this long in every step (a slow model).
  void set_step_delay_ms(int ms) { step_delay_ms_ = ms; }
  // From the next Step on, report a sampled digest no other rank has (a rank
  // whose samples diverged).
  void set_diverge(bool diverge) { diverge_ = diverge; }
  // Completed handshakes (InitCache calls).
  int num_handshakes() const { return num_handshakes_; }
  // Steps answered successfully.
  int num_steps() const { return num_steps_; }
  // Sequences this worker holds state for.
  size_t num_sequences();
  // The first contract violation seen, OK if none.
  absl::Status violation();

  // The Worker contract (proto/worker.proto), answered by the toy model.
  grpc::Status Info(grpc::ServerContext*, const v1::InfoRequest*,
                    v1::InfoResponse*) override;
  grpc::Status CreateUniqueId(grpc::ServerContext*,
                              const v1::CreateUniqueIdRequest*,
                              v1::CreateUniqueIdResponse*) override;
  grpc::Status InitDistributed(grpc::ServerContext*,
                               const v1::InitDistributedRequest*,
                               v1::InitDistributedResponse*) override;
  grpc::Status LoadModel(grpc::ServerContext*, const v1::LoadModelRequest*,
                         v1::LoadModelResponse*) override;
  grpc::Status ProfileMemory(grpc::ServerContext*,
                             const v1::ProfileMemoryRequest*,
                             v1::ProfileMemoryResponse*) override;
  grpc::Status InitCache(grpc::ServerContext*, const v1::InitCacheRequest*,
                         v1::InitCacheResponse*) override;
  grpc::Status StepStream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>*) override;
  grpc::Status Health(grpc::ServerContext*, const v1::WorkerHealthRequest*,
                      v1::WorkerHealthResponse*) override;

 private:
  explicit FakeWorker(FakeWorkerOptions options);
  v1::ModelInfo Model(int max_model_len) const;

  const FakeWorkerOptions options_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> fail_steps_{false};
  std::atomic<bool> hang_steps_{false};
  std::atomic<bool> diverge_{false};
  std::atomic<bool> killed_{false};
  std::atomic<int> step_delay_ms_{0};
  std::atomic<int> num_handshakes_{0};
  std::atomic<int> num_steps_{0};
  std::mutex mu_;
  std::string token_;  // the group's (InitDistributed)
  int rank_ = -1;
  int block_size_ = 0;
  int max_model_len_ = 0;
  std::unique_ptr<ToyWorkerState> state_;
  // Rank 0: where it forwards steps (InitCache.relay_to).
  worker::RelayOptions relay_;
  absl::Status violation_;
};

}  // namespace tpserve::router::testing

#endif  // TPSERVE_ROUTER_TESTING_FAKE_WORKER_H_
