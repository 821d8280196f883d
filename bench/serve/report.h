// The results of a run as vLLM's benchmark presents them: the text block it
// prints and the JSON it saves (same key names), so numbers from tpserve's
// and vLLM's benchmarks compare line by line.
#ifndef TPSERVE_BENCH_SERVE_REPORT_H_
#define TPSERVE_BENCH_SERVE_REPORT_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/serve/config.h"
#include "bench/serve/metrics.h"
#include "bench/serve/request.h"

namespace tpserve::bench {

// What the report needs besides the metrics.
struct ReportInfo {
  BenchConfig config;
  // The model name sent, and where the tokenizer came from.
  std::string model_id;
  std::string tokenizer_id;
  // ttft / tpot / itl / e2el, in --percentile-metrics order.
  std::vector<std::string> percentile_metrics;
  bool goodput = false;
  double duration_s = 0;
  // Local time of the run, YYYYMMDD-HHMMSS.
  std::string date;
};

// vLLM's result block ("====== Serving Benchmark Result ======" ... "=====").
std::string FormatReport(const BenchmarkMetrics& m, const ReportInfo& info);

// Up to `max` failed requests' errors, one line each, or "" when none failed.
std::string FormatErrors(const std::vector<RequestOutput>& outputs, int max);

// The saved JSON, keys in vLLM's order; per-request lists only with
// --save-detailed.
nlohmann::ordered_json ResultJson(const BenchmarkMetrics& m,
                                  const std::vector<RequestOutput>& outputs,
                                  const ReportInfo& info);

// vLLM's default name, LABEL-RATEqps[-concurrencyN]-MODEL-DATE.json, or
// --result-filename; inside --result-dir when given.
std::string ResultPath(const ReportInfo& info);

// Python's str(float), as vLLM prints rates: "inf", "4.0", "0.5".
std::string PyFloat(double v);

// "99" for 99, "99.9" for 99.9 (the pNN_ key and "PNN" label spelling).
std::string PercentileName(double p);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_REPORT_H_
