// An in-process fake of the Router gRPC service for gateway tests and the
// node SDK test server: deterministic token streams, injectable errors
// (RESOURCE_EXHAUSTED with retry-after-ms, UNAVAILABLE, ...), slow streams,
// and a record of requests and cancellations. It is a test double, never
// used by the real server.
#ifndef TPSERVE_GATEWAY_TESTING_FAKE_ROUTER_H_
#define TPSERVE_GATEWAY_TESTING_FAKE_ROUTER_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/router.grpc.pb.h"

namespace tpserve::gateway::testing {

// How the fake answers Generate calls.
struct FakeRouterScript {
  // Tokens streamed, one per message, then eos_token_id (finish STOP with
  // stop_token_id set), or fewer when max_tokens comes first (LENGTH).
  std::vector<int> reply_tokens;
  int eos_token_id = 151645;
  // Delay before the first token and between tokens.
  std::chrono::milliseconds first_token_delay{0};
  std::chrono::milliseconds token_delay{0};
  // Reported as usage.cached_tokens.
  int cached_tokens = 0;
};

// The fake Router service plus its gRPC server on 127.0.0.1:<free port>.
class FakeRouter final : public tpserve::v1::Router::Service {
 public:
  // Starts serving; `model` is returned by Health once ready.
  static absl::StatusOr<std::unique_ptr<FakeRouter>> Start(tpserve::v1::ModelInfo model,
                                                           FakeRouterScript script);
  ~FakeRouter() override;

  // "127.0.0.1:<port>".
  std::string address() const;
  // Replaces the script for later calls.
  void SetScript(FakeRouterScript script);
  // The next calls fail with `status` (before any token); retry_after_ms > 0
  // is sent as `retry-after-ms` trailing metadata.
  void FailNext(grpc::Status status, int count = 1, int64_t retry_after_ms = 0);
  // Stats and Health report these.
  void SetLoad(int running, int waiting);
  void SetState(tpserve::v1::ServingState state);

  // Requests received so far (copies).
  std::vector<tpserve::v1::GenerateRequest> requests() const;
  // Number of Generate calls the client cancelled while they were running.
  int cancelled() const;
  // Waits until cancelled() >= n or the timeout passes; returns whether it did.
  bool WaitForCancelled(int n, std::chrono::milliseconds timeout) const;
  // Number of Generate calls currently running.
  int active() const;

  grpc::Status Generate(grpc::ServerContext* context, const tpserve::v1::GenerateRequest* request,
                        grpc::ServerWriter<tpserve::v1::GenerateResponse>* writer) override;
  grpc::Status Health(grpc::ServerContext* context, const tpserve::v1::HealthRequest* request,
                      tpserve::v1::HealthResponse* response) override;
  grpc::Status Stats(grpc::ServerContext* context, const tpserve::v1::StatsRequest* request,
                     tpserve::v1::StatsResponse* response) override;

 private:
  FakeRouter(tpserve::v1::ModelInfo model, FakeRouterScript script)
      : model_(std::move(model)), script_(std::move(script)) {}
  // Sleeps `d` in small steps; false if the call was cancelled meanwhile.
  bool SleepUnlessCancelled(grpc::ServerContext* context, std::chrono::milliseconds d);

  const tpserve::v1::ModelInfo model_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  FakeRouterScript script_;
  struct Failure {
    grpc::Status status;
    int64_t retry_after_ms;
  };
  std::deque<Failure> failures_;
  std::vector<tpserve::v1::GenerateRequest> requests_;
  int cancelled_ = 0;
  int active_ = 0;
  int running_ = 0;
  int waiting_ = 0;
  tpserve::v1::ServingState state_ = tpserve::v1::SERVING_STATE_READY;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// A ModelInfo for the tiny chat fixture (vocab 151936) with `max_model_len`.
tpserve::v1::ModelInfo TinyChatModelInfo(int max_model_len = 4096);

}  // namespace tpserve::gateway::testing

#endif  // TPSERVE_GATEWAY_TESTING_FAKE_ROUTER_H_
