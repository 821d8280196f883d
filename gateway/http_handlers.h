// The HTTP handlers. Each takes the shared context and the plain request and
// response of http_types.h (gateway_server.cc adapts them to cpp-httplib);
// none throws (errors become OpenAI error objects through http_error.h).
#ifndef TPSERVE_GATEWAY_HTTP_HANDLERS_H_
#define TPSERVE_GATEWAY_HTTP_HANDLERS_H_

#include <chrono>

#include "absl/status/status.h"
#include "gateway/gateway_context.h"
#include "gateway/http_types.h"

namespace tpserve::gateway {

// Writes `status` as an OpenAI error object (with Retry-After for 429).
void WriteError(const absl::Status& status, HttpResponse& res);

// POST /v1/chat/completions (chat = true) and POST /v1/completions.
void HandleGenerate(GatewayContext& ctx, bool chat, const HttpRequest& req,
                    HttpResponse& res);

// Shutdown: waits up to `timeout` for the generations in flight, then ends
// the rest with an error (streams get an error event and `data: [DONE]`,
// non-streaming requests a 503) and waits briefly for those answers to go out.
void DrainGenerations(GatewayContext& ctx, std::chrono::milliseconds timeout);

// GET /v1/models.
void HandleModels(const GatewayContext& ctx, const HttpRequest& req, HttpResponse& res);
// GET /health: 200 when a router is ready and the gateway is not draining.
void HandleHealth(const GatewayContext& ctx, const HttpRequest& req, HttpResponse& res);
// GET /metrics (Prometheus text).
void HandleMetrics(GatewayContext& ctx, const HttpRequest& req, HttpResponse& res);
// GET /version.
void HandleVersion(const GatewayContext& ctx, const HttpRequest& req, HttpResponse& res);
// POST /tokenize (vLLM shape: prompt or messages in; tokens, count,
// max_model_len out).
void HandleTokenize(const GatewayContext& ctx, const HttpRequest& req, HttpResponse& res);
// POST /detokenize (tokens in, prompt out).
void HandleDetokenize(const GatewayContext& ctx, const HttpRequest& req,
                      HttpResponse& res);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_HTTP_HANDLERS_H_
