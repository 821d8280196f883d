#include "router/router_service.h"

#include <grpcpp/server_context.h>

namespace tpserve::router {

grpc::ServerWriteReactor<v1::GenerateResponse>* RouterService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return GenerateReactor::Start(engine_, &pump_, context, *request);
}

grpc::ServerUnaryReactor* RouterService::Health(
    grpc::CallbackServerContext* context, const v1::HealthRequest*,
    v1::HealthResponse* response) {
  *response = engine_->Health();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterService::Stats(
    grpc::CallbackServerContext* context, const v1::StatsRequest* request,
    v1::StatsResponse* response) {
  *response = engine_->Stats(request->include_metrics_text());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace tpserve::router
