#include "bench/serve/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tpserve::bench {
namespace {

RequestOutput Ok(double start, double ttft, double latency, int tokens, int prompt_len,
                 std::vector<double> itl = {}) {
  RequestOutput o;
  o.success = true;
  o.start_time = start;
  o.ttft = ttft;
  o.latency = latency;
  o.output_tokens = tokens;
  o.prompt_len = prompt_len;
  o.itl = std::move(itl);
  return o;
}

int NoCount(const std::string&) {
  ADD_FAILURE() << "usage was present; the tokenizer must not be asked";
  return 0;
}

TEST(PercentileTest, MatchesNumpyLinearInterpolation) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 2.5);
  EXPECT_NEAR(Percentile(v, 99), 3.97, 1e-12);  // rank 2.97
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
}

TEST(SummarizeTest, MeanMedianPopulationStdInMilliseconds) {
  LatencyStats s = Summarize({0.004, 0.001, 0.003, 0.002}, {50, 90, 99});
  EXPECT_NEAR(s.mean_ms, 2.5, 1e-9);
  EXPECT_NEAR(s.median_ms, 2.5, 1e-9);
  EXPECT_NEAR(s.std_ms, std::sqrt(1.25), 1e-9);
  ASSERT_EQ(s.percentiles_ms.size(), 3u);
  EXPECT_EQ(s.percentiles_ms[1].first, 90);
  EXPECT_NEAR(s.percentiles_ms[1].second, 3.7, 1e-9);  // rank 2.7
  EXPECT_NEAR(s.percentiles_ms[2].second, 3.97, 1e-9);
}

TEST(SummarizeTest, NoValuesGiveZeros) {
  LatencyStats s = Summarize({}, {99});
  EXPECT_EQ(s.mean_ms, 0);
  ASSERT_EQ(s.percentiles_ms.size(), 1u);
  EXPECT_EQ(s.percentiles_ms[0].second, 0);
}

TEST(ComputeMetricsTest, ThroughputTpotAndGoodput) {
  std::vector<RequestOutput> outs = {
      Ok(0, 0.1, 1.1, 11, 10),  // TPOT 1.0 / 10 = 100 ms
      Ok(0, 0.5, 0.9, 5, 20),   // TPOT 0.4 / 4 = 100 ms, TTFT over the SLO
      Ok(0, 0.2, 0.4, 1, 30),   // one token: no TPOT, counts as 0 for goodput
      RequestOutput{},          // failed
  };
  outs[3].error = "HTTP 500: boom";
  Slo slo;
  slo.ttft_ms = 300;
  slo.tpot_ms = 100;
  BenchmarkMetrics m = ComputeMetrics(outs, 2.0, {99}, slo, NoCount);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 60);
  EXPECT_EQ(m.total_output, 17);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 8.5);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 38.5);
  EXPECT_DOUBLE_EQ(m.request_goodput, 1.0);  // requests 0 and 2 meet both SLOs
  EXPECT_NEAR(m.tpot.mean_ms, 100, 1e-9);
  EXPECT_NEAR(m.ttft.mean_ms, (100 + 500 + 200) / 3.0, 1e-9);
  EXPECT_NEAR(m.e2el.median_ms, 900, 1e-9);
  EXPECT_EQ(m.output_lens, (std::vector<int>{11, 5, 1, 0}));
}

TEST(ComputeMetricsTest, WithoutUsageTheReplyIsTokenized) {
  RequestOutput o = Ok(0, 0.1, 0.5, 0, 4);
  o.generated_text = "a b c";
  int asked = 0;
  BenchmarkMetrics m = ComputeMetrics({o}, 1.0, {99}, Slo{}, [&](const std::string& s) {
    ++asked;
    EXPECT_EQ(s, "a b c");
    return 3;
  });
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(m.total_output, 3);
  EXPECT_EQ(m.request_goodput, 0);
}

TEST(ComputeMetricsTest, PeaksPerSecond) {
  // Chunks at 0.5, 0.7, 0.9 (second 0) and 1.1, 1.4 (second 1).
  std::vector<RequestOutput> outs = {Ok(0, 0.5, 0.9, 3, 1, {0.2, 0.2}),
                                     Ok(0.5, 0.6, 0.9, 2, 1, {0.3})};
  BenchmarkMetrics m = ComputeMetrics(outs, 2.0, {99}, Slo{}, NoCount);
  EXPECT_EQ(m.max_output_tokens_per_s, 3);
  EXPECT_EQ(m.max_concurrent_requests, 2);  // both active in second 0
  EXPECT_NEAR(m.itl.mean_ms, (200 + 200 + 300) / 3.0, 1e-9);
}

TEST(ParseTest, Goodput) {
  absl::StatusOr<Slo> s = ParseGoodput({"ttft:500", "e2el:2000.5"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s->ttft_ms, 500);
  EXPECT_FALSE(s->tpot_ms.has_value());
  EXPECT_EQ(*s->e2el_ms, 2000.5);
  for (const char* bad : {"ttft", "foo:1", "ttft:-1", "ttft:abc", "ttft:1:2"}) {
    EXPECT_FALSE(ParseGoodput({bad}).ok()) << bad;
  }
}

TEST(ParseTest, PercentilesAndMetrics) {
  EXPECT_EQ(*ParseMetricPercentiles("50,90,99.9"), (std::vector<double>{50, 90, 99.9}));
  EXPECT_FALSE(ParseMetricPercentiles("50,abc").ok());
  EXPECT_FALSE(ParseMetricPercentiles("101").ok());
  EXPECT_EQ(*ParsePercentileMetrics("ttft,e2el"), (std::vector<std::string>{"ttft", "e2el"}));
  EXPECT_FALSE(ParsePercentileMetrics("ttft,foo").ok());
}

}  // namespace
}  // namespace tpserve::bench
