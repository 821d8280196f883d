// The router's Prometheus metrics, named like vLLM's (tpserve: instead of
// vllm:) so that existing dashboards carry over.
#ifndef TPSERVE_ROUTER_ROUTER_METRICS_H_
#define TPSERVE_ROUTER_ROUTER_METRICS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"

namespace tpserve::router {

// Every metric the router exports, registered once.
struct RouterMetrics {
  // Registers all families in a fresh registry.
  static absl::StatusOr<std::unique_ptr<RouterMetrics>> Create();

  metrics::Registry registry;
  metrics::Gauge* num_requests_running = nullptr;
  metrics::Gauge* num_requests_waiting = nullptr;
  // Fraction of KV blocks in use, 0..1 (vLLM's kv_cache_usage_perc is too).
  metrics::Gauge* kv_cache_usage_perc = nullptr;
  metrics::Gauge* prefix_cache_hit_rate = nullptr;
  metrics::Counter* prefix_cache_queries_total = nullptr;
  metrics::Counter* prefix_cache_hits_total = nullptr;
  metrics::Counter* num_preemptions_total = nullptr;
  metrics::Counter* prompt_tokens_total = nullptr;
  metrics::Counter* generation_tokens_total = nullptr;
  // Requests that ended, by finished_reason (stop, length, abort).
  metrics::Family<metrics::Counter>* request_success_total = nullptr;
  // Requests refused at admission, by gRPC code name.
  metrics::Family<metrics::Counter>* requests_rejected_total = nullptr;
  metrics::Counter* worker_failures_total = nullptr;
  metrics::Histogram* step_duration_seconds = nullptr;
  metrics::Histogram* tokens_per_step = nullptr;
  metrics::Histogram* time_to_first_token_seconds = nullptr;
  metrics::Histogram* e2e_request_latency_seconds = nullptr;
  // Structured output: requests with a grammar, and each step's mask time
  // on rank 0 (StepResponse.mask_time_us).
  metrics::Counter* structured_output_requests_total = nullptr;
  metrics::Histogram* structured_output_mask_seconds = nullptr;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_ROUTER_METRICS_H_
