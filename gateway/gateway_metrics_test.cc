#include "gateway/gateway_metrics.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "common/metrics/metrics.h"

namespace tpserve::gateway {
namespace {

// A router-like registry: a step histogram, a queue gauge, and a family the
// gateway has its own copy of (not re-exported).
std::string RouterText(double step_seconds, double waiting) {
  metrics::Registry r;
  auto* step = r.AddHistogram("tpserve:step_duration_seconds", "Step time.", {0.01, 0.1}).value();
  step->Get().value()->Observe(step_seconds);
  r.AddGauge("tpserve:num_requests_waiting", "Waiting.").value()->Get().value()->Set(waiting);
  r.AddCounter("tpserve:generation_tokens_total", "Tokens.").value()->Get().value()->Increment(7);
  return r.Render();
}

TEST(ReexportRouterMetricsTest, LabelsEveryRoutersSamplesUnderOneHelpAndType) {
  std::string out = ReexportRouterMetrics(
      {{"10.0.0.1:50051", RouterText(0.005, 3)}, {"10.0.0.2:50051", RouterText(0.05, 4)}});
  const std::string bucket = "tpserve:step_duration_seconds_bucket";
  EXPECT_NE(out.find(bucket + "{router=\"10.0.0.1:50051\",le=\"0.01\"} 1\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find(bucket + "{router=\"10.0.0.2:50051\",le=\"0.01\"} 0\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("tpserve:step_duration_seconds_count{router=\"10.0.0.2:50051\"} 1\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("tpserve:num_requests_waiting{router=\"10.0.0.1:50051\"} 3\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("tpserve:num_requests_waiting{router=\"10.0.0.2:50051\"} 4\n"),
            std::string::npos)
      << out;
  // One HELP/TYPE per family, before its samples, whatever the number of routers.
  size_t help = out.find("# HELP tpserve:step_duration_seconds ");
  ASSERT_NE(help, std::string::npos) << out;
  EXPECT_EQ(out.find("# HELP tpserve:step_duration_seconds ", help + 1), std::string::npos) << out;
  EXPECT_LT(help, out.find("tpserve:step_duration_seconds_bucket"));
  // The gateway counts tokens itself: the router's family is not repeated.
  EXPECT_FALSE(absl::StrContains(out, "generation_tokens_total")) << out;
}

TEST(ReexportRouterMetricsTest, NothingWithoutRouterText) {
  EXPECT_EQ(ReexportRouterMetrics({}), "");
  EXPECT_EQ(ReexportRouterMetrics({{"r:1", ""}}), "");
}

}  // namespace
}  // namespace tpserve::gateway
