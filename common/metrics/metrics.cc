#include "common/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tpserve::metrics {
namespace {

// Adds with a CAS loop: fetch_add on atomic<double> compiles to the same loop
// and this keeps the intent visible.
void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount,
                                       std::memory_order_relaxed)) {
  }
}

bool IsValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsValidLabelName(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// The exposition format's escapes: backslash and newline everywhere, and the
// double quote inside label values (HELP text is not quoted).
std::string EscapeText(const std::string& text, bool quoted) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"' && quoted) {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& help) { return EscapeText(help, /*quoted=*/false); }

// `{a="x",b="y"}` or "" when there are no labels; `extra` (e.g. le="0.5")
// is appended last.
std::string LabelSet(const std::vector<std::string>& names,
                     const std::vector<std::string>& values,
                     const std::string& extra = "") {
  std::vector<std::string> parts;
  for (size_t i = 0; i < names.size(); ++i) {
    parts.push_back(
        absl::StrCat(names[i], "=\"", EscapeLabelValue(values[i]), "\""));
  }
  if (!extra.empty()) parts.push_back(extra);
  if (parts.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

}  // namespace

void Counter::Increment(double amount) {
  if (!(amount > 0.0)) return;  // Also rejects NaN.
  AtomicAdd(value_, amount);
}

void Gauge::Increment(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // Prometheus buckets are inclusive upper bounds: le="0.5" counts 0.5.
  const size_t index =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  snapshot.bucket_counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    snapshot.bucket_counts[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  snapshot.count = count_.load(std::memory_order_relaxed);
  return snapshot;
}

absl::StatusOr<std::vector<double>> ExponentialBuckets(double start,
                                                       double factor,
                                                       int count) {
  if (!(start > 0.0) || !(factor > 1.0) || count < 1 || !std::isfinite(start) ||
      !std::isfinite(factor)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "exponential buckets need start > 0, factor > 1, count >= 1; got "
        "start=",
        start, " factor=", factor, " count=", count));
  }
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

absl::StatusOr<std::vector<double>> LinearBuckets(double start, double width,
                                                  int count) {
  if (!(width > 0.0) || count < 1 || !std::isfinite(start) ||
      !std::isfinite(width)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "linear buckets need width > 0, count >= 1; got start=", start,
        " width=", width, " count=", count));
  }
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(start + i * width);
  return bounds;
}

template <typename T>
absl::StatusOr<T*> Family<T>::WithLabels(
    const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "metric ", name_, " has ", label_names_.size(), " label(s) [",
        absl::StrJoin(label_names_, ","), "] but ", label_values.size(),
        " value(s) were given"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = children_.find(label_values);
  if (it != children_.end()) return it->second.get();
  std::unique_ptr<T> child;
  if constexpr (std::is_same_v<T, Histogram>) {
    child = std::make_unique<Histogram>(bounds_);
  } else {
    child = std::make_unique<T>();
  }
  T* raw = child.get();
  children_.emplace(label_values, std::move(child));
  return raw;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// One registered family of any kind; exactly one pointer is set.
struct Registry::Entry {
  std::string name;
  std::unique_ptr<Family<Counter>> counter;
  std::unique_ptr<Family<Gauge>> gauge;
  std::unique_ptr<Family<Histogram>> histogram;
};

Registry::Registry() = default;
Registry::~Registry() = default;

template <typename T>
absl::StatusOr<Family<T>*> Registry::Add(
    const std::string& name, const std::string& help,
    const std::vector<std::string>& label_names, std::vector<double> bounds) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid metric name \"", name, "\": must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  std::set<std::string> seen;
  for (const std::string& label : label_names) {
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid label name \"", label, "\" for metric ", name,
          ": must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"));
    }
    if (std::is_same_v<T, Histogram> && label == "le") {
      return absl::InvalidArgumentError(absl::StrCat(
          "label name \"le\" is reserved for histogram buckets (metric ", name,
          ")"));
    }
    if (!seen.insert(label).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label name \"", label, "\" repeated for metric ", name));
    }
  }
  if constexpr (std::is_same_v<T, Histogram>) {
    for (size_t i = 0; i < bounds.size(); ++i) {
      if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "histogram ", name,
            " bucket bounds must be finite and strictly increasing"));
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& entry : entries_) {
    if (entry->name != name) continue;
    Family<T>* existing = nullptr;
    if constexpr (std::is_same_v<T, Counter>) existing = entry->counter.get();
    if constexpr (std::is_same_v<T, Gauge>) existing = entry->gauge.get();
    if constexpr (std::is_same_v<T, Histogram>) {
      existing = entry->histogram.get();
      if (existing != nullptr && existing->bounds_ != bounds) existing = nullptr;
    }
    if (existing != nullptr && existing->label_names() == label_names) {
      return existing;
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "metric ", name,
        " is already registered with a different kind, labels or buckets"));
  }
  auto entry = std::make_unique<Entry>();
  entry->name = name;
  auto family = std::unique_ptr<Family<T>>(
      new Family<T>(name, help, label_names, std::move(bounds)));
  Family<T>* raw = family.get();
  if constexpr (std::is_same_v<T, Counter>) entry->counter = std::move(family);
  if constexpr (std::is_same_v<T, Gauge>) entry->gauge = std::move(family);
  if constexpr (std::is_same_v<T, Histogram>) {
    entry->histogram = std::move(family);
  }
  entries_.push_back(std::move(entry));
  return raw;
}

absl::StatusOr<Family<Counter>*> Registry::AddCounter(
    const std::string& name, const std::string& help,
    const std::vector<std::string>& label_names) {
  return Add<Counter>(name, help, label_names, {});
}

absl::StatusOr<Family<Gauge>*> Registry::AddGauge(
    const std::string& name, const std::string& help,
    const std::vector<std::string>& label_names) {
  return Add<Gauge>(name, help, label_names, {});
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogram(
    const std::string& name, const std::string& help,
    std::vector<double> bounds, const std::vector<std::string>& label_names) {
  return Add<Histogram>(name, help, label_names, std::move(bounds));
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& entry : entries_) {
    auto header = [&](const auto& family, const char* type) {
      absl::StrAppend(&out, "# HELP ", family.name(), " ",
                      EscapeHelp(family.help()), "\n# TYPE ", family.name(),
                      " ", type, "\n");
    };
    if (entry->counter != nullptr || entry->gauge != nullptr) {
      const bool is_counter = entry->counter != nullptr;
      auto sample = [&](const auto& family) {
        family.ForEach([&](const std::vector<std::string>& values,
                           const auto& child) {
          absl::StrAppend(&out, family.name(),
                          LabelSet(family.label_names(), values), " ",
                          FormatValue(child.Value()), "\n");
        });
      };
      if (is_counter) {
        header(*entry->counter, "counter");
        sample(*entry->counter);
      } else {
        header(*entry->gauge, "gauge");
        sample(*entry->gauge);
      }
      continue;
    }
    const Family<Histogram>& family = *entry->histogram;
    header(family, "histogram");
    family.ForEach([&](const std::vector<std::string>& values,
                       const Histogram& child) {
      const Histogram::Snapshot snap = child.Read();
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= snap.bounds.size(); ++i) {
        cumulative += snap.bucket_counts[i];
        const std::string le =
            i < snap.bounds.size() ? FormatValue(snap.bounds[i]) : "+Inf";
        absl::StrAppend(
            &out, family.name(), "_bucket",
            LabelSet(family.label_names(), values,
                     absl::StrCat("le=\"", le, "\"")),
            " ", cumulative, "\n");
      }
      const std::string labels = LabelSet(family.label_names(), values);
      // The count is the +Inf bucket so that the two never disagree even
      // while other threads observe.
      absl::StrAppend(&out, family.name(), "_sum", labels, " ",
                      FormatValue(snap.sum), "\n", family.name(), "_count",
                      labels, " ", cumulative, "\n");
    });
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buffer, end);
}

std::string EscapeLabelValue(const std::string& value) {
  return EscapeText(value, /*quoted=*/true);
}

}  // namespace tpserve::metrics
