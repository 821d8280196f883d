// What one Jinja render may still spend: the size of any one value it builds
// and a wall-clock deadline. Shared by the interpreter and the builtins
// (through CallArgs::budget), so that a builtin building a big value checks
// the render's own limits as it goes.
#ifndef TPSERVE_COMMON_TEXT_JINJA_BUDGET_H_
#define TPSERVE_COMMON_TEXT_JINJA_BUDGET_H_

#include <chrono>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace tpserve::text::jinja {

class RenderBudget {
 public:
  using Clock = std::chrono::steady_clock;

  // The deadline starts now; an infinite `max_duration` never expires.
  RenderBudget(size_t max_value_bytes, absl::Duration max_duration)
      : max_value_bytes_(max_value_bytes),
        max_duration_(max_duration),
        unlimited_time_(max_duration == absl::InfiniteDuration()),
        deadline_(unlimited_time_ ? Clock::time_point::max()
                                  : Clock::now() + absl::ToChronoNanoseconds(max_duration)) {}

  size_t max_value_bytes() const { return max_value_bytes_; }

  // Accounts for one unit of work that touched `bytes` bytes. The clock is
  // read only once per kClockEveryWork of accumulated work (a call counts
  // kWorkPerCall), so a check costs a few instructions: an evaluation or a
  // builtin's append may call it every time, and a render overruns its
  // deadline by at most ~1 MiB of copying.
  absl::Status Spend(size_t bytes) {
    work_ += bytes + kWorkPerCall;
    if (work_ < kClockEveryWork || unlimited_time_) return absl::OkStatus();
    work_ = 0;
    if (Clock::now() <= deadline_) return absl::OkStatus();
    return absl::DeadlineExceededError(absl::StrCat("template render exceeded its time limit of ",
                                                    absl::FormatDuration(max_duration_),
                                                    " (RenderLimits::max_duration)"));
  }

  // A value being built has reached `total` bytes, `added` of them in this
  // step: RESOURCE_EXHAUSTED naming `what` past max_value_bytes, otherwise
  // Spend(added).
  absl::Status Grow(size_t total, size_t added, const char* what) {
    if (total > max_value_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(what, " too large: over ", max_value_bytes_,
                                                       " bytes (RenderLimits::max_value_bytes)"));
    }
    return Spend(added);
  }

 private:
  static constexpr size_t kWorkPerCall = 1024;
  static constexpr size_t kClockEveryWork = 1u << 20;

  size_t max_value_bytes_;
  absl::Duration max_duration_;
  bool unlimited_time_;
  Clock::time_point deadline_;
  size_t work_ = 0;
};

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_BUDGET_H_
