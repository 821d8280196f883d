// The Router gRPC service: Generate (server streaming) on top of the Engine,
// plus Health and Stats. Handlers never throw and never block the step loop.
#ifndef TPSERVE_ROUTER_ROUTER_SERVICE_H_
#define TPSERVE_ROUTER_ROUTER_SERVICE_H_

#include "proto/router.grpc.pb.h"
#include "router/engine.h"

namespace tpserve::router {

// Implements tpserve.v1.Router against one Engine (not owned).
class RouterService final : public v1::Router::Service {
 public:
  explicit RouterService(Engine* engine) : engine_(engine) {}

  // Admits the request, then streams its tokens until it ends, the client
  // cancels, or the deadline passes.
  grpc::Status Generate(grpc::ServerContext* context,
                        const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  // Serving state and model.
  grpc::Status Health(grpc::ServerContext* context,
                      const v1::HealthRequest* request,
                      v1::HealthResponse* response) override;
  // Load figures and Prometheus text.
  grpc::Status Stats(grpc::ServerContext* context,
                     const v1::StatsRequest* request,
                     v1::StatsResponse* response) override;

 private:
  Engine* const engine_;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_ROUTER_SERVICE_H_
