#include "bench/serve/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace tpserve::bench {
namespace {

constexpr int kBarWidth = 30;
// A terminal bar is redrawn at most this often (a redraw per completion
// would cost more than the requests at high rates).
constexpr double kBarInterval = 0.1;

std::string Clock(double s) {
  const int t = static_cast<int>(s);
  return t >= 3600 ? absl::StrFormat("%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
                   : absl::StrFormat("%02d:%02d", t / 60, t % 60);
}

}  // namespace

Progress::Mode Progress::ModeFor(std::FILE* stream, bool disabled) {
  if (disabled) return Mode::kOff;
  return isatty(fileno(stream)) ? Mode::kBar : Mode::kLines;
}

Progress::Progress(Mode mode, int total, std::FILE* out, double line_interval_s)
    : mode_(mode), total_(total), out_(out), line_interval_s_(line_interval_s) {}

std::string Progress::Bar(int done, int total, double elapsed_s) {
  const double frac = total > 0 ? static_cast<double>(done) / total : 1.0;
  const double cells = frac * kBarWidth;
  std::string bar(static_cast<size_t>(cells), '#');
  if (bar.size() < kBarWidth) {
    const int tenth = static_cast<int>((cells - std::floor(cells)) * 10);
    bar += tenth > 0 ? static_cast<char>('0' + tenth) : ' ';
    bar.resize(kBarWidth, ' ');
  }
  const double rate = elapsed_s > 0 ? done / elapsed_s : 0;
  const std::string eta = rate > 0 ? Clock((total - done) / rate) : "?";
  return absl::StrFormat("%3d%%|%s| %d/%d [%s<%s, %.2f req/s]", static_cast<int>(frac * 100), bar,
                         done, total, Clock(elapsed_s), eta, rate);
}

void Progress::Update(int done, int failed, double elapsed_s) {
  if (mode_ == Mode::kOff) return;
  if (mode_ == Mode::kBar) {
    if (done == last_done_ || (last_draw_ >= 0 && elapsed_s - last_draw_ < kBarInterval)) return;
  } else if (elapsed_s - std::max(0.0, last_draw_) < line_interval_s_) {
    return;
  }
  last_draw_ = elapsed_s;
  last_done_ = done;
  if (mode_ == Mode::kBar) {
    std::fprintf(out_, "\r%s", Bar(done, total_, elapsed_s).c_str());
  } else {
    std::fprintf(out_, "progress: %d/%d requests done (%d failed), %.1f s, %.2f req/s\n", done,
                 total_, failed, elapsed_s, elapsed_s > 0 ? done / elapsed_s : 0.0);
  }
  std::fflush(out_);
}

void Progress::Finish(int done, int failed, double elapsed_s) {
  if (mode_ == Mode::kBar) {
    std::fprintf(out_, "\r%s\n", Bar(done, total_, elapsed_s).c_str());
  } else if (mode_ == Mode::kLines) {
    std::fprintf(out_, "progress: %d/%d requests done (%d failed), %.1f s\n", done, total_, failed,
                 elapsed_s);
  }
  std::fflush(out_);
}

}  // namespace tpserve::bench
