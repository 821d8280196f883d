// A small Prometheus text-exposition library: counters, gauges and histograms,
// optionally with labels, all safe to update from any thread. A Registry owns
// metric families and renders them in the text format Prometheus scrapes
// (version 0.0.4), so the router's and gateway's /metrics look like vLLM's.
//
//   Registry registry;
//   auto* requests = registry.AddCounter("tpserve:requests_total", "Requests.",
//                                        {"status"}).value();
//   requests->WithLabels({"ok"}).value()->Increment();
//   std::string text = registry.Render();
//
// Registration and label lookups return absl::StatusOr so that a bad metric
// name or a wrong number of label values is an error the caller sees, not a
// crash. Children returned by WithLabels live as long as the registry, so hot
// paths look them up once and keep the pointer.
#ifndef TPSERVE_COMMON_METRICS_METRICS_H_
#define TPSERVE_COMMON_METRICS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tpserve::metrics {

// A value that only goes up (requests served, preemptions).
class Counter {
 public:
  // Adds `amount` (negative or NaN amounts are ignored: counters never fall).
  void Increment(double amount = 1.0);
  // The current total.
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down (queue length, cache usage).
class Gauge {
 public:
  // Replaces the value.
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  // Adds `amount` (may be negative).
  void Increment(double amount = 1.0);
  // Subtracts `amount`.
  void Decrement(double amount = 1.0) { Increment(-amount); }
  // The current value.
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into fixed buckets (latencies, batch sizes).
class Histogram {
 public:
  // `bounds` are the finite upper bounds, strictly increasing; +Inf is
  // implicit. Use Registry::AddHistogram, which validates them.
  explicit Histogram(std::vector<double> bounds);

  // Records one observation (NaN is ignored).
  void Observe(double value);

  // A consistent-enough copy for rendering and tests: per-bucket counts (not
  // cumulative; the last entry is the +Inf bucket), sum and count.
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> bucket_counts;
    double sum = 0.0;
    uint64_t count = 0;
  };
  // Copies the current state.
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  // bounds_.size() + 1 counters; the last one is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

// `count` bounds start, start*factor, start*factor^2, ... (start > 0,
// factor > 1, count >= 1).
absl::StatusOr<std::vector<double>> ExponentialBuckets(double start,
                                                       double factor,
                                                       int count);
// `count` bounds start, start+width, ... (width > 0, count >= 1).
absl::StatusOr<std::vector<double>> LinearBuckets(double start, double width,
                                                  int count);

// All children of one metric name, one per distinct tuple of label values.
template <typename T>
class Family {
 public:
  // Returns the child for `label_values` (one per label name, in order),
  // creating it on first use.
  absl::StatusOr<T*> WithLabels(const std::vector<std::string>& label_values);
  // The child without labels; only valid for families with no label names
  // (otherwise FAILED_PRECONDITION).
  absl::StatusOr<T*> Get() { return WithLabels({}); }

  // Name, help and label names as registered.
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  friend class Registry;
  Family(std::string name, std::string help,
         std::vector<std::string> label_names, std::vector<double> bounds)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // Calls fn(label_values, child) for every child, in label order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [values, child] : children_) fn(values, *child);
  }

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  // Histogram bucket bounds (empty for counters and gauges).
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

// Owns metric families and renders them as Prometheus text.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a counter family. Registering the same name again with the
  // same kind and label names returns the existing family; anything else
  // that clashes is ALREADY_EXISTS. Bad names are INVALID_ARGUMENT.
  absl::StatusOr<Family<Counter>*> AddCounter(
      const std::string& name, const std::string& help,
      const std::vector<std::string>& label_names = {});
  // Registers a gauge family (same rules as AddCounter).
  absl::StatusOr<Family<Gauge>*> AddGauge(
      const std::string& name, const std::string& help,
      const std::vector<std::string>& label_names = {});
  // Registers a histogram family with finite, strictly increasing `bounds`
  // ("le" is reserved and may not be a label name).
  absl::StatusOr<Family<Histogram>*> AddHistogram(
      const std::string& name, const std::string& help,
      std::vector<double> bounds,
      const std::vector<std::string>& label_names = {});

  // Every family in registration order, in the text exposition format.
  std::string Render() const;

 private:
  struct Entry;
  template <typename T>
  absl::StatusOr<Family<T>*> Add(const std::string& name,
                                 const std::string& help,
                                 const std::vector<std::string>& label_names,
                                 std::vector<double> bounds);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// Formats a sample value the way Prometheus parses it: shortest round-trip
// decimal, "+Inf", "-Inf" or "NaN".
std::string FormatValue(double value);

// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& value);

}  // namespace tpserve::metrics

#endif  // TPSERVE_COMMON_METRICS_METRICS_H_
