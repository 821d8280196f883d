// The Router gRPC service on gRPC's callback API: Generate (server
// streaming, one GenerateReactor per call, no thread per stream) on top of
// the Engine, plus Health and Stats. Handlers never throw and never block
// the step loop.
#ifndef TPSERVE_ROUTER_ROUTER_SERVICE_H_
#define TPSERVE_ROUTER_ROUTER_SERVICE_H_

#include "proto/router.grpc.pb.h"
#include "router/engine.h"
#include "router/generate_reactor.h"

namespace tpserve::router {

// Threads that start Generate writes (see WritePump). Two keep the step
// loop's hand-off short on any host; gRPC's own threads take the writes
// that follow a completed one.
inline constexpr int kWritePumpThreads = 2;

// Implements tpserve.v1.Router against one Engine (not owned).
class RouterService final : public v1::Router::CallbackService {
 public:
  explicit RouterService(Engine* engine)
      : engine_(engine), pump_(kWritePumpThreads) {}

  // Admits the request, then streams its tokens until it ends, the client
  // cancels, or the deadline passes.
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;
  // Serving state and model.
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context,
                                   const v1::HealthRequest* request,
                                   v1::HealthResponse* response) override;
  // Load figures and Prometheus text.
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const v1::StatsRequest* request,
                                  v1::StatsResponse* response) override;

 private:
  Engine* const engine_;
  WritePump pump_;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_ROUTER_SERVICE_H_
