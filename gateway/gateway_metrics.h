// The gateway's Prometheus metrics, named like vLLM's with a "tpserve:"
// prefix, plus per-router load gauges refreshed from the router pool.
#ifndef TPSERVE_GATEWAY_GATEWAY_METRICS_H_
#define TPSERVE_GATEWAY_GATEWAY_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"
#include "gateway/router_pool.h"

namespace tpserve::gateway {

// The router families the gateway's /metrics repeats (names as the router
// exports them, plus a `router` label): the step cost and the queue and KV
// gauges, so that the serving overhead shows where the gateway is scraped.
inline constexpr const char* kReexportedRouterFamilies[] = {
    "tpserve:step_duration_seconds", "tpserve:tokens_per_step", "tpserve:num_requests_running",
    "tpserve:num_requests_waiting", "tpserve:kv_cache_usage_perc",
    "tpserve:structured_output_requests_total", "tpserve:structured_output_mask_seconds"};

// One router's Prometheus text and the address it is labelled with.
struct RouterMetricsText {
  std::string address;
  std::string text;
};

// The kReexportedRouterFamilies found in the routers' texts, each family once
// (HELP and TYPE from the first router that has it) with the samples of every
// router, `router="<address>"` added to their labels.
std::string ReexportRouterMetrics(const std::vector<RouterMetricsText>& routers);

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
  // Refreshes router gauges and renders the exposition text, followed by
  // the routers' re-exported families (from their last Stats poll).
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
