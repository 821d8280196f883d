#include "common/metrics/metrics.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tpserve::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, CounterRendersHelpTypeAndValue) {
  Registry registry;
  auto family = registry.AddCounter("tpserve:num_preemptions_total",
                                    "Cumulative number of preemptions.");
  ASSERT_TRUE(family.ok()) << family.status();
  Counter* counter = (*family)->Get().value();
  counter->Increment();
  counter->Increment(2.5);
  counter->Increment(-4);  // Ignored: counters never fall.
  EXPECT_DOUBLE_EQ(counter->Value(), 3.5);
  EXPECT_EQ(registry.Render(),
            "# HELP tpserve:num_preemptions_total Cumulative number of "
            "preemptions.\n"
            "# TYPE tpserve:num_preemptions_total counter\n"
            "tpserve:num_preemptions_total 3.5\n");
}

TEST(MetricsTest, GaugeWithLabelsSortedAndEscaped) {
  Registry registry;
  auto* family =
      registry.AddGauge("queue_len", "Help with \\ and\nnewline.", {"model", "kind"})
          .value();
  family->WithLabels({"b", "x"}).value()->Set(2);
  Gauge* g = family->WithLabels({"a\"q\\\n", "y"}).value();
  g->Increment(5);
  g->Decrement(1.5);
  EXPECT_EQ(registry.Render(),
            "# HELP queue_len Help with \\\\ and\\nnewline.\n"
            "# TYPE queue_len gauge\n"
            "queue_len{model=\"a\\\"q\\\\\\n\",kind=\"y\"} 3.5\n"
            "queue_len{model=\"b\",kind=\"x\"} 2\n");
}

TEST(MetricsTest, WrongLabelArityIsAnError) {
  Registry registry;
  auto* family = registry.AddCounter("c_total", "c", {"a"}).value();
  EXPECT_EQ(family->Get().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(family->WithLabels({"x", "y"}).status().message(),
              HasSubstr("1 label(s) [a] but 2 value(s)"));
  EXPECT_TRUE(family->WithLabels({"x"}).ok());
  // Same child every time.
  EXPECT_EQ(family->WithLabels({"x"}).value(), family->WithLabels({"x"}).value());
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  Registry registry;
  auto* family =
      registry.AddHistogram("step_seconds", "Step time.", {0.1, 0.5, 1}).value();
  Histogram* h = family->Get().value();
  for (double v : {0.05, 0.1, 0.3, 0.5, 2.0, std::nan("")}) h->Observe(v);
  const Histogram::Snapshot snap = h->Read();
  EXPECT_EQ(snap.count, 5u);
  EXPECT_DOUBLE_EQ(snap.sum, 2.95);
  EXPECT_EQ(snap.bucket_counts, (std::vector<uint64_t>{2, 2, 0, 1}));
  EXPECT_EQ(registry.Render(),
            "# HELP step_seconds Step time.\n"
            "# TYPE step_seconds histogram\n"
            "step_seconds_bucket{le=\"0.1\"} 2\n"
            "step_seconds_bucket{le=\"0.5\"} 4\n"
            "step_seconds_bucket{le=\"1\"} 4\n"
            "step_seconds_bucket{le=\"+Inf\"} 5\n"
            "step_seconds_sum 2.95\n"
            "step_seconds_count 5\n");
}

TEST(MetricsTest, HistogramWithLabelsPutsLeLast) {
  Registry registry;
  auto* family =
      registry.AddHistogram("lat", "l", {1}, {"route"}).value();
  family->WithLabels({"/v1"}).value()->Observe(0.5);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("lat_bucket{route=\"/v1\",le=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("lat_bucket{route=\"/v1\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("lat_sum{route=\"/v1\"} 0.5\n"));
  EXPECT_THAT(text, HasSubstr("lat_count{route=\"/v1\"} 1\n"));
}

TEST(MetricsTest, RegistrationErrors) {
  struct Case {
    const char* name;
    std::vector<std::string> labels;
  };
  Registry registry;
  for (const Case& c : std::vector<Case>{{"", {}},
                                         {"9abc", {}},
                                         {"a-b", {}},
                                         {"ok", {"__reserved"}},
                                         {"ok", {"1x"}},
                                         {"ok", {"a", "a"}}}) {
    EXPECT_EQ(registry.AddGauge(c.name, "h", c.labels).status().code(),
              absl::StatusCode::kInvalidArgument)
        << c.name;
  }
  EXPECT_EQ(registry.AddHistogram("h", "h", {1}, {"le"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h", "h", {1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry
                .AddHistogram("h", "h",
                              {1, std::numeric_limits<double>::infinity()})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Render(), "");
}

TEST(MetricsTest, ReRegistrationReturnsSameFamilyOrAlreadyExists) {
  Registry registry;
  auto* a = registry.AddCounter("x_total", "x", {"k"}).value();
  EXPECT_EQ(registry.AddCounter("x_total", "x", {"k"}).value(), a);
  EXPECT_EQ(registry.AddGauge("x_total", "x", {"k"}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddCounter("x_total", "x", {"j"}).status().code(),
            absl::StatusCode::kAlreadyExists);
  registry.AddHistogram("h", "h", {1, 2}).value();
  EXPECT_EQ(registry.AddHistogram("h", "h", {1, 3}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(MetricsTest, BucketHelpers) {
  EXPECT_EQ(ExponentialBuckets(1, 2, 4).value(),
            (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(LinearBuckets(0, 5, 3).value(), (std::vector<double>{0, 5, 10}));
  EXPECT_FALSE(ExponentialBuckets(0, 2, 4).ok());
  EXPECT_FALSE(ExponentialBuckets(1, 1, 4).ok());
  EXPECT_FALSE(LinearBuckets(0, 0, 3).ok());
  EXPECT_FALSE(LinearBuckets(0, 1, 0).ok());
}

TEST(MetricsTest, FormatValue) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-1.5e-7), "-1.5e-07");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

// Many threads updating one counter, gauge and histogram lose no update.
TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  Counter* counter = registry.AddCounter("c_total", "c").value()->Get().value();
  Gauge* gauge = registry.AddGauge("g", "g").value()->Get().value();
  auto* hist_family = registry.AddHistogram("h", "h", {0.5}, {"t"}).value();
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Histogram* h = hist_family->WithLabels({t % 2 ? "odd" : "even"}).value();
      for (int i = 0; i < kIters; ++i) {
        counter->Increment();
        gauge->Increment(t % 2 ? 1 : -1);
        h->Observe(i % 2 ? 1.0 : 0.25);
        if (i % 1000 == 0) (void)registry.Render();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_DOUBLE_EQ(counter->Value(), kThreads * kIters);
  EXPECT_DOUBLE_EQ(gauge->Value(), 0);
  const auto odd = hist_family->WithLabels({"odd"}).value()->Read();
  EXPECT_EQ(odd.count, uint64_t{kThreads / 2 * kIters});
  EXPECT_EQ(odd.bucket_counts[0], uint64_t{kThreads / 2 * kIters / 2});
  EXPECT_DOUBLE_EQ(odd.sum, kThreads / 2 * (kIters / 2) * 1.25);
}

}  // namespace
}  // namespace tpserve::metrics
