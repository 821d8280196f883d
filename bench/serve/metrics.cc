#include "bench/serve/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tpserve::bench {
namespace {

constexpr const char* kMetricNames[] = {"ttft", "tpot", "itl", "e2el"};

}  // namespace

absl::StatusOr<Slo> ParseGoodput(const std::vector<std::string>& pairs) {
  Slo slo;
  for (const std::string& pair : pairs) {
    std::vector<std::string> kv = absl::StrSplit(pair, ':');
    double ms = 0;
    if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &ms) || std::isnan(ms)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", pair, "' is not KEY:VALUE (e.g. ttft:500 tpot:50, values in milliseconds)"));
    }
    if (ms < 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", pair, "': the value must be >= 0"));
    }
    if (kv[0] == "ttft") {
      slo.ttft_ms = ms;
    } else if (kv[0] == "tpot") {
      slo.tpot_ms = ms;
    } else if (kv[0] == "e2el") {
      slo.e2el_ms = ms;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("'", kv[0], "' is not an SLO name (accepted: ttft, tpot, e2el)"));
    }
  }
  return slo;
}

absl::StatusOr<std::vector<double>> ParseMetricPercentiles(const std::string& csv) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(csv, ',')) {
    double p = 0;
    if (!absl::SimpleAtod(part, &p) || !(p >= 0 && p <= 100)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "' is not a percentile (accepted: numbers from 0 to 100)"));
    }
    out.push_back(p);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParsePercentileMetrics(const std::string& csv) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(csv, ',')) {
    if (std::find(std::begin(kMetricNames), std::end(kMetricNames), part) ==
        std::end(kMetricNames)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "' is not a metric (accepted: ttft, tpot, itl, e2el)"));
    }
    out.emplace_back(part);
  }
  return out;
}

double Percentile(const std::vector<double>& sorted, double p) {
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

LatencyStats Summarize(std::vector<double> values_s, const std::vector<double>& percentiles) {
  LatencyStats s;
  if (values_s.empty()) {
    for (double p : percentiles) s.percentiles_ms.emplace_back(p, 0.0);
    return s;
  }
  std::sort(values_s.begin(), values_s.end());
  double sum = 0;
  for (double v : values_s) sum += v;
  const double mean = sum / static_cast<double>(values_s.size());
  double sq = 0;
  for (double v : values_s) sq += (v - mean) * (v - mean);
  s.mean_ms = mean * 1000;
  s.std_ms = std::sqrt(sq / static_cast<double>(values_s.size())) * 1000;
  s.median_ms = Percentile(values_s, 50) * 1000;
  for (double p : percentiles) s.percentiles_ms.emplace_back(p, Percentile(values_s, p) * 1000);
  return s;
}

namespace {

// vLLM's peak figures: successful requests' chunks bucketed per wall-clock
// second from the first start, and requests active in each second.
void ComputePeaks(const std::vector<RequestOutput>& outputs, BenchmarkMetrics* m) {
  double first = 0, last = 0;
  bool any = false;
  for (const RequestOutput& o : outputs) {
    if (!o.success) continue;
    first = any ? std::min(first, o.start_time) : o.start_time;
    last = any ? std::max(last, o.start_time + o.latency) : o.start_time + o.latency;
    any = true;
  }
  if (!any) return;
  const size_t seconds = static_cast<size_t>(std::ceil(last - first)) + 1;
  std::vector<double> tokens(seconds, 0.0);
  std::vector<int> active(seconds, 0);
  for (const RequestOutput& o : outputs) {
    if (!o.success) continue;
    double t = o.start_time + o.ttft;
    auto add = [&](double at) {
      const double b = std::floor(at - first);
      if (b >= 0 && b < static_cast<double>(seconds)) tokens[static_cast<size_t>(b)] += 1;
    };
    add(t);
    for (double gap : o.itl) add(t += gap);
    const size_t from = static_cast<size_t>(o.start_time - first);
    const size_t to = std::min(seconds - 1, static_cast<size_t>(o.start_time + o.latency - first));
    for (size_t s = from; s <= to; ++s) ++active[s];
  }
  m->max_output_tokens_per_s = *std::max_element(tokens.begin(), tokens.end());
  m->max_concurrent_requests = *std::max_element(active.begin(), active.end());
}

}  // namespace

BenchmarkMetrics ComputeMetrics(const std::vector<RequestOutput>& outputs, double duration_s,
                                const std::vector<double>& percentiles, const Slo& slo,
                                const TokenCounter& count_tokens) {
  BenchmarkMetrics m;
  std::vector<double> ttfts, tpots, itls, e2els;
  int good = 0;
  for (const RequestOutput& o : outputs) {
    if (!o.success) {
      ++m.failed;
      m.output_lens.push_back(0);
      continue;
    }
    // The server's usage count when it sent one; else (as vLLM) the reply
    // re-tokenized, since one chunk may carry several tokens.
    int output_len = o.output_tokens > 0 ? o.output_tokens : count_tokens(o.generated_text);
    m.output_lens.push_back(output_len);
    m.total_output += output_len;
    m.total_input += o.prompt_len;
    ++m.completed;
    // Requests of one token have no TPOT; they count as 0 toward goodput.
    double tpot = 0;
    if (output_len > 1) {
      tpot = (o.latency - o.ttft) / (output_len - 1);
      tpots.push_back(tpot);
    }
    itls.insert(itls.end(), o.itl.begin(), o.itl.end());
    ttfts.push_back(o.ttft);
    e2els.push_back(o.latency);
    if (!slo.empty()) {
      const bool ok = (!slo.ttft_ms || o.ttft * 1000 <= *slo.ttft_ms) &&
                      (!slo.tpot_ms || tpot * 1000 <= *slo.tpot_ms) &&
                      (!slo.e2el_ms || o.latency * 1000 <= *slo.e2el_ms);
      good += ok ? 1 : 0;
    }
  }
  const double d = duration_s > 0 ? duration_s : 1e-9;
  m.request_throughput = m.completed / d;
  m.request_goodput = good / d;
  m.output_throughput = static_cast<double>(m.total_output) / d;
  m.total_token_throughput = static_cast<double>(m.total_input + m.total_output) / d;
  m.ttft = Summarize(std::move(ttfts), percentiles);
  m.tpot = Summarize(std::move(tpots), percentiles);
  m.itl = Summarize(std::move(itls), percentiles);
  m.e2el = Summarize(std::move(e2els), percentiles);
  ComputePeaks(outputs, &m);
  return m;
}

}  // namespace tpserve::bench
