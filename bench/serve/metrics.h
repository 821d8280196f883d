// Benchmark statistics computed as vLLM's `calculate_metrics` does: TTFT,
// TPOT, ITL and E2EL with mean / median / std (population) and percentiles
// (numpy's linear interpolation), throughput, goodput and peaks.
#ifndef TPSERVE_BENCH_SERVE_METRICS_H_
#define TPSERVE_BENCH_SERVE_METRICS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/serve/request.h"

namespace tpserve::bench {

// Service level objectives of --goodput, in milliseconds.
struct Slo {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
};

// "ttft:500", "tpot:50", "e2el:2000" pairs.
absl::StatusOr<Slo> ParseGoodput(const std::vector<std::string>& pairs);
// "50,90,99" → {50, 90, 99}; each in [0, 100].
absl::StatusOr<std::vector<double>> ParseMetricPercentiles(const std::string& csv);
// "ttft,tpot,itl" → names, each one of ttft, tpot, itl, e2el.
absl::StatusOr<std::vector<std::string>> ParsePercentileMetrics(const std::string& csv);

// numpy.percentile(values, p) with linear interpolation; `sorted` ascending
// and non-empty.
double Percentile(const std::vector<double>& sorted, double p);

// One metric's summary, in milliseconds.
struct LatencyStats {
  double mean_ms = 0;
  double median_ms = 0;
  double std_ms = 0;
  // (percentile, value) for each requested percentile.
  std::vector<std::pair<double, double>> percentiles_ms;
};

// Summary of `values_s` (seconds); all zero for no values, as vLLM reports.
LatencyStats Summarize(std::vector<double> values_s, const std::vector<double>& percentiles);

struct BenchmarkMetrics {
  int completed = 0;
  int failed = 0;
  int64_t total_input = 0;
  int64_t total_output = 0;
  double request_throughput = 0;
  double request_goodput = 0;
  double output_throughput = 0;
  double total_token_throughput = 0;
  LatencyStats ttft, tpot, itl, e2el;
  // Most output tokens in one wall-clock second, and requests active then.
  double max_output_tokens_per_s = 0;
  int max_concurrent_requests = 0;
  // Per request (0 for failed ones).
  std::vector<int> output_lens;
};

// Counts the tokens of a reply when the server sent no usage.
using TokenCounter = std::function<int(const std::string&)>;

// Everything vLLM reports, from the per-request outputs of a run that took
// `duration_s`.
BenchmarkMetrics ComputeMetrics(const std::vector<RequestOutput>& outputs, double duration_s,
                                const std::vector<double>& percentiles, const Slo& slo,
                                const TokenCounter& count_tokens);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_METRICS_H_
