#include "bench/serve/report.h"

#include <gtest/gtest.h>

#include <limits>

namespace tpserve::bench {
namespace {

ReportInfo Info() {
  ReportInfo info;
  info.config.max_concurrency = 16;
  info.config.request_rate = 4;
  info.config.num_prompts = 2;
  info.model_id = "org/Qwen2-7B";
  info.tokenizer_id = "/models/q";
  info.percentile_metrics = {"ttft", "e2el"};
  info.duration_s = 2.5;
  info.date = "20261130-120000";
  return info;
}

BenchmarkMetrics Metrics() {
  BenchmarkMetrics m;
  m.completed = 2;
  m.failed = 1;
  m.total_input = 100;
  m.total_output = 40;
  m.request_throughput = 0.8;
  m.output_throughput = 16;
  m.total_token_throughput = 56;
  m.max_output_tokens_per_s = 30;
  m.max_concurrent_requests = 2;
  m.ttft = {12.5, 12.0, 1.5, {{99, 14.25}}};
  m.e2el = {100, 100, 0, {{99, 101.0}}};
  m.output_lens = {20, 20, 0};
  return m;
}

TEST(ReportTest, TextIsVllmsLayout) {
  EXPECT_EQ(FormatReport(Metrics(), Info()),
            "============ Serving Benchmark Result ============\n"
            "Successful requests:                     2         \n"
            "Failed requests:                         1         \n"
            "Maximum request concurrency:             16        \n"
            "Request rate configured (RPS):           4.00      \n"
            "Benchmark duration (s):                  2.50      \n"
            "Total input tokens:                      100       \n"
            "Total generated tokens:                  40        \n"
            "Request throughput (req/s):              0.80      \n"
            "Output token throughput (tok/s):         16.00     \n"
            "Peak output token throughput (tok/s):    30.00     \n"
            "Peak concurrent requests:                2.00      \n"
            "Total Token throughput (tok/s):          56.00     \n"
            "---------------Time to First Token----------------\n"
            "Mean TTFT (ms):                          12.50     \n"
            "Median TTFT (ms):                        12.00     \n"
            "P99 TTFT (ms):                           14.25     \n"
            "----------------End-to-end Latency----------------\n"
            "Mean E2EL (ms):                          100.00    \n"
            "Median E2EL (ms):                        100.00    \n"
            "P99 E2EL (ms):                           101.00    \n"
            "==================================================\n");
}

TEST(ReportTest, JsonUsesVllmKeys) {
  ReportInfo info = Info();
  std::vector<RequestOutput> outs(3);
  nlohmann::ordered_json j = ResultJson(Metrics(), outs, info);
  for (const char* key : {"date",
                          "backend",
                          "model_id",
                          "tokenizer_id",
                          "num_prompts",
                          "request_rate",
                          "burstiness",
                          "max_concurrency",
                          "duration",
                          "completed",
                          "failed",
                          "total_input_tokens",
                          "total_output_tokens",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "std_ttft_ms",
                          "p99_ttft_ms",
                          "mean_e2el_ms",
                          "p99_e2el_ms"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_FALSE(j.contains("mean_tpot_ms"));  // not in --percentile-metrics
  EXPECT_FALSE(j.contains("itls"));          // only with --save-detailed
  EXPECT_EQ(j["completed"], 2);
  EXPECT_EQ(j["p99_ttft_ms"], 14.25);
  EXPECT_EQ(j["request_rate"], 4.0);
  EXPECT_TRUE(j["request_goodput"].is_null());
  info.config.save_detailed = true;
  info.config.request_rate = std::numeric_limits<double>::infinity();
  info.config.metadata = {"gpu=H200"};
  j = ResultJson(Metrics(), outs, info);
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_EQ(j["gpu"], "H200");
  EXPECT_EQ(j["output_lens"], nlohmann::ordered_json({20, 20, 0}));
  EXPECT_EQ(j["itls"].size(), 3u);
}

TEST(ReportTest, FileNameAndNames) {
  ReportInfo info = Info();
  EXPECT_EQ(ResultPath(info), "openai-4.0qps-concurrency16-Qwen2-7B-20261130-120000.json");
  info.config.result_dir = "out";
  info.config.result_filename = "r.json";
  EXPECT_EQ(ResultPath(info), "out/r.json");
  EXPECT_EQ(PercentileName(99), "99");
  EXPECT_EQ(PercentileName(99.9), "99.9");
  EXPECT_EQ(PyFloat(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(PyFloat(0.5), "0.5");
}

TEST(ReportTest, ErrorsShowTheFirstFew) {
  std::vector<RequestOutput> outs(5);
  outs[0].success = true;
  for (int i = 1; i < 5; ++i) outs[i].error = "HTTP 401: Invalid API key";
  EXPECT_EQ(FormatErrors(outs, 2),
            "Errors (2 of 4 failed requests):\n"
            "  request 1: HTTP 401: Invalid API key\n"
            "  request 2: HTTP 401: Invalid API key\n");
  EXPECT_EQ(FormatErrors({outs[0]}, 2), "");
}

}  // namespace
}  // namespace tpserve::bench
