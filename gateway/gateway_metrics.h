// The gateway's Prometheus metrics, named like vLLM's with a "tpserve:"
// prefix, plus per-router load gauges refreshed from the router pool.
#ifndef TPSERVE_GATEWAY_GATEWAY_METRICS_H_
#define TPSERVE_GATEWAY_GATEWAY_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"
#include "gateway/router_pool.h"

namespace tpserve::gateway {

// Handles to every gateway metric (pointers owned by `registry`).
struct GatewayMetrics {
  // Registers every family in a fresh registry.
  static absl::StatusOr<std::unique_ptr<GatewayMetrics>> Create();

  // HTTP responses by endpoint and status code.
  void CountHttp(const std::string& endpoint, int status);
  // A generation finished with `finish_reason` (stop, length, abort, error).
  void CountFinished(const std::string& finish_reason);
  // Copies the routers' load figures into the router gauges.
  void UpdateRouters(const RouterPool& pool);
  // Refreshes router gauges and renders the exposition text.
  std::string Render(const RouterPool* pool);

  metrics::Registry registry;
  metrics::Family<metrics::Counter>* http_requests = nullptr;
  metrics::Family<metrics::Counter>* request_success = nullptr;
  metrics::Counter* prompt_tokens = nullptr;
  metrics::Counter* generation_tokens = nullptr;
  metrics::Gauge* in_flight = nullptr;
  metrics::Histogram* time_to_first_token = nullptr;
  metrics::Histogram* inter_token_latency = nullptr;
  metrics::Histogram* e2e_latency = nullptr;
  metrics::Family<metrics::Gauge>* router_running = nullptr;
  metrics::Family<metrics::Gauge>* router_waiting = nullptr;
  metrics::Family<metrics::Gauge>* router_kv_usage = nullptr;
  metrics::Family<metrics::Gauge>* router_ready = nullptr;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_GATEWAY_METRICS_H_
