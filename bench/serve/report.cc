#include "bench/serve/report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace tpserve::bench {
namespace {

// Python's "{s:{c}^{n}}": centred, the odd pad character on the right.
std::string Centered(const std::string& s, char fill, size_t width = 50) {
  if (s.size() >= width) return s;
  const size_t pad = width - s.size();
  return std::string(pad / 2, fill) + s + std::string(pad - pad / 2, fill);
}

// The rows of "{:<40} {:<10}" and "{:<40} {:<10.2f}".
std::string Row(const std::string& label, int64_t v) {
  return absl::StrFormat("%-40s %-10d\n", label, v);
}
std::string Row(const std::string& label, double v) {
  return absl::StrFormat("%-40s %-10.2f\n", label, v);
}

struct MetricInfo {
  const char* key;
  const char* name;
  const char* header;
  const LatencyStats BenchmarkMetrics::*stats;
};

constexpr MetricInfo kMetrics[] = {
    {"ttft", "TTFT", "Time to First Token", &BenchmarkMetrics::ttft},
    {"tpot", "TPOT", "Time per Output Token (excl. 1st token)", &BenchmarkMetrics::tpot},
    {"itl", "ITL", "Inter-token Latency", &BenchmarkMetrics::itl},
    {"e2el", "E2EL", "End-to-end Latency", &BenchmarkMetrics::e2el},
};

bool Selected(const ReportInfo& info, const char* key) {
  for (const std::string& k : info.percentile_metrics) {
    if (k == key) return true;
  }
  return false;
}

}  // namespace

std::string PyFloat(double v) {
  if (std::isinf(v)) return "inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.1f", v);
  return absl::StrCat(v);
}

std::string PercentileName(double p) {
  return p == std::floor(p) ? absl::StrCat(static_cast<int64_t>(p)) : absl::StrCat(p);
}

std::string FormatReport(const BenchmarkMetrics& m, const ReportInfo& info) {
  const BenchConfig& c = info.config;
  std::string s = Centered(" Serving Benchmark Result ", '=') + "\n";
  s += Row("Successful requests:", int64_t{m.completed});
  s += Row("Failed requests:", int64_t{m.failed});
  if (c.max_concurrency > 0) s += Row("Maximum request concurrency:", int64_t{c.max_concurrency});
  if (!std::isinf(c.request_rate)) s += Row("Request rate configured (RPS):", c.request_rate);
  s += Row("Benchmark duration (s):", info.duration_s);
  s += Row("Total input tokens:", m.total_input);
  s += Row("Total generated tokens:", m.total_output);
  s += Row("Request throughput (req/s):", m.request_throughput);
  if (info.goodput) s += Row("Request goodput (req/s):", m.request_goodput);
  s += Row("Output token throughput (tok/s):", m.output_throughput);
  s += Row("Peak output token throughput (tok/s):", m.max_output_tokens_per_s);
  s += Row("Peak concurrent requests:", static_cast<double>(m.max_concurrent_requests));
  s += Row("Total Token throughput (tok/s):", m.total_token_throughput);
  for (const MetricInfo& mi : kMetrics) {
    if (!Selected(info, mi.key)) continue;
    const LatencyStats& st = m.*(mi.stats);
    s += Centered(mi.header, '-') + "\n";
    s += Row(absl::StrCat("Mean ", mi.name, " (ms):"), st.mean_ms);
    s += Row(absl::StrCat("Median ", mi.name, " (ms):"), st.median_ms);
    for (const auto& [p, v] : st.percentiles_ms) {
      s += Row(absl::StrCat("P", PercentileName(p), " ", mi.name, " (ms):"), v);
    }
  }
  s += std::string(50, '=') + "\n";
  return s;
}

std::string FormatErrors(const std::vector<RequestOutput>& outputs, int max) {
  int failed = 0;
  std::string lines;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].success) continue;
    if (++failed <= max) absl::StrAppend(&lines, "  request ", i, ": ", outputs[i].error, "\n");
  }
  if (failed == 0) return "";
  return absl::StrCat("Errors (", std::min(failed, max), " of ", failed, " failed requests):\n",
                      lines);
}

nlohmann::ordered_json ResultJson(const BenchmarkMetrics& m,
                                  const std::vector<RequestOutput>& outputs,
                                  const ReportInfo& info) {
  const BenchConfig& c = info.config;
  nlohmann::ordered_json j;
  j["date"] = info.date;
  j["endpoint_type"] = c.backend;
  j["backend"] = c.backend;
  j["label"] = c.label.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(c.label);
  j["model_id"] = info.model_id;
  j["tokenizer_id"] = info.tokenizer_id;
  j["num_prompts"] = c.num_prompts;
  for (const std::string& kv : c.metadata) {
    std::vector<std::string> parts = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    j[parts[0]] = parts.size() > 1 ? parts[1] : "";
  }
  j["request_rate"] = std::isinf(c.request_rate) ? nlohmann::ordered_json("inf")
                                                 : nlohmann::ordered_json(c.request_rate);
  j["burstiness"] = c.burstiness;
  j["max_concurrency"] =
      c.max_concurrency > 0 ? nlohmann::ordered_json(c.max_concurrency) : nlohmann::ordered_json();
  j["duration"] = info.duration_s;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input;
  j["total_output_tokens"] = m.total_output;
  j["request_throughput"] = m.request_throughput;
  j["request_goodput"] =
      info.goodput ? nlohmann::ordered_json(m.request_goodput) : nlohmann::ordered_json();
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  if (c.save_detailed) {
    auto& in = j["input_lens"] = nlohmann::ordered_json::array();
    j["output_lens"] = m.output_lens;
    auto& ttfts = j["ttfts"] = nlohmann::ordered_json::array();
    auto& itls = j["itls"] = nlohmann::ordered_json::array();
    auto& texts = j["generated_texts"] = nlohmann::ordered_json::array();
    auto& errors = j["errors"] = nlohmann::ordered_json::array();
    for (const RequestOutput& o : outputs) {
      in.push_back(o.prompt_len);
      ttfts.push_back(o.ttft);
      itls.push_back(o.itl);
      texts.push_back(o.generated_text);
      errors.push_back(o.error);
    }
  }
  j["max_output_tokens_per_s"] = m.max_output_tokens_per_s;
  j["max_concurrent_requests"] = m.max_concurrent_requests;
  for (const MetricInfo& mi : kMetrics) {
    if (!Selected(info, mi.key)) continue;
    const LatencyStats& st = m.*(mi.stats);
    j[absl::StrCat("mean_", mi.key, "_ms")] = st.mean_ms;
    j[absl::StrCat("median_", mi.key, "_ms")] = st.median_ms;
    j[absl::StrCat("std_", mi.key, "_ms")] = st.std_ms;
    for (const auto& [p, v] : st.percentiles_ms) {
      j[absl::StrCat("p", PercentileName(p), "_", mi.key, "_ms")] = v;
    }
  }
  return j;
}

std::string ResultPath(const ReportInfo& info) {
  const BenchConfig& c = info.config;
  std::string name = c.result_filename;
  if (name.empty()) {
    const std::string label = c.label.empty() ? c.backend : c.label;
    std::string model = info.model_id;
    if (size_t slash = model.find_last_of('/'); slash != std::string::npos) {
      model = model.substr(slash + 1);
    }
    name =
        absl::StrCat(label, "-", PyFloat(c.request_rate), "qps",
                     c.max_concurrency > 0 ? absl::StrCat("-concurrency", c.max_concurrency) : "",
                     "-", model, "-", info.date, ".json");
  }
  return c.result_dir.empty() ? name : absl::StrCat(c.result_dir, "/", name);
}

}  // namespace tpserve::bench
