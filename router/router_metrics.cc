#include "router/router_metrics.h"

#include "common/status_macros.h"

namespace tpserve::router {

absl::StatusOr<std::unique_ptr<RouterMetrics>> RouterMetrics::Create() {
  auto m = std::make_unique<RouterMetrics>();
  metrics::Registry& r = m->registry;
  auto gauge = [&](const char* name,
                   const char* help) -> absl::StatusOr<metrics::Gauge*> {
    TP_ASSIGN_OR_RETURN(auto* family, r.AddGauge(name, help));
    return family->Get();
  };
  auto counter = [&](const char* name,
                     const char* help) -> absl::StatusOr<metrics::Counter*> {
    TP_ASSIGN_OR_RETURN(auto* family, r.AddCounter(name, help));
    return family->Get();
  };
  auto histogram = [&](const char* name, const char* help,
                       std::vector<double> bounds)
      -> absl::StatusOr<metrics::Histogram*> {
    TP_ASSIGN_OR_RETURN(auto* family, r.AddHistogram(name, help, bounds));
    return family->Get();
  };
  TP_ASSIGN_OR_RETURN(m->num_requests_running,
                      gauge("tpserve:num_requests_running",
                            "Number of requests in model execution batches."));
  TP_ASSIGN_OR_RETURN(m->num_requests_waiting,
                      gauge("tpserve:num_requests_waiting",
                            "Number of requests waiting to be processed."));
  TP_ASSIGN_OR_RETURN(m->kv_cache_usage_perc,
                      gauge("tpserve:kv_cache_usage_perc",
                            "KV-cache usage. 1 means 100 percent usage."));
  TP_ASSIGN_OR_RETURN(
      m->prefix_cache_hit_rate,
      gauge("tpserve:prefix_cache_hit_rate",
            "Prefix cache hits / queries in tokens since start, 0..1."));
  TP_ASSIGN_OR_RETURN(m->prefix_cache_queries_total,
                      counter("tpserve:prefix_cache_queries_total",
                              "Prefix cache queries, in tokens."));
  TP_ASSIGN_OR_RETURN(m->prefix_cache_hits_total,
                      counter("tpserve:prefix_cache_hits_total",
                              "Prefix cache hits, in tokens."));
  TP_ASSIGN_OR_RETURN(m->num_preemptions_total,
                      counter("tpserve:num_preemptions_total",
                              "Cumulative number of preemptions."));
  TP_ASSIGN_OR_RETURN(m->prompt_tokens_total,
                      counter("tpserve:prompt_tokens_total",
                              "Number of prefill tokens processed."));
  TP_ASSIGN_OR_RETURN(m->generation_tokens_total,
                      counter("tpserve:generation_tokens_total",
                              "Number of generation tokens processed."));
  TP_ASSIGN_OR_RETURN(m->worker_failures_total,
                      counter("tpserve:worker_failures_total",
                              "Worker group failures (a rank failed or timed "
                              "out) since start."));
  TP_ASSIGN_OR_RETURN(
      m->request_success_total,
      r.AddCounter("tpserve:request_success_total",
                   "Count of finished requests by finish reason.",
                   {"finished_reason"}));
  TP_ASSIGN_OR_RETURN(
      m->requests_rejected_total,
      r.AddCounter("tpserve:requests_rejected_total",
                   "Requests refused at admission, by status code.",
                   {"code"}));
  TP_ASSIGN_OR_RETURN(auto latency,
                      metrics::ExponentialBuckets(0.001, 2, 18));
  TP_ASSIGN_OR_RETURN(m->step_duration_seconds,
                      histogram("tpserve:step_duration_seconds",
                                "Wall time of one scheduler step "
                                "(schedule, worker round trip, update).",
                                latency));
  TP_ASSIGN_OR_RETURN(auto tokens, metrics::ExponentialBuckets(1, 2, 16));
  TP_ASSIGN_OR_RETURN(m->tokens_per_step,
                      histogram("tpserve:tokens_per_step",
                                "Tokens computed in one step.", tokens));
  TP_ASSIGN_OR_RETURN(m->time_to_first_token_seconds,
                      histogram("tpserve:time_to_first_token_seconds",
                                "Histogram of time to first token in seconds.",
                                latency));
  TP_ASSIGN_OR_RETURN(m->e2e_request_latency_seconds,
                      histogram("tpserve:e2e_request_latency_seconds",
                                "Histogram of end to end request latency in "
                                "seconds.",
                                latency));
  TP_ASSIGN_OR_RETURN(m->structured_output_requests_total,
                      counter("tpserve:structured_output_requests_total",
                              "Requests admitted with a structured output "
                              "grammar (response_format, guided_*, forced "
                              "tool calls)."));
  // 10 us .. 0.33 s: a cached mask costs microseconds, a grammar node's
  // first one tens of milliseconds.
  TP_ASSIGN_OR_RETURN(auto mask_time, metrics::ExponentialBuckets(1e-5, 2, 16));
  TP_ASSIGN_OR_RETURN(m->structured_output_mask_seconds,
                      histogram("tpserve:structured_output_mask_seconds",
                                "Time rank 0 spent building one step's "
                                "structured output token masks (steps with "
                                "a grammar only).",
                                mask_time));
  return m;
}

}  // namespace tpserve::router
