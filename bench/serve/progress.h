// Progress of a benchmark run on stderr: a bar redrawn in place on a
// terminal, a plain line every few seconds otherwise (logs, CI), nothing with
// --disable-tqdm.
#ifndef TPSERVE_BENCH_SERVE_PROGRESS_H_
#define TPSERVE_BENCH_SERVE_PROGRESS_H_

#include <cstdio>
#include <string>

namespace tpserve::bench {

class Progress {
 public:
  enum class Mode { kOff, kBar, kLines };

  // kBar when `stream` is a terminal, else kLines; kOff when `disabled`.
  static Mode ModeFor(std::FILE* stream, bool disabled);

  Progress(Mode mode, int total, std::FILE* out = stderr, double line_interval_s = 10.0);
  // `done` requests finished, `failed` of them failed, `elapsed_s` into the run.
  void Update(int done, int failed, double elapsed_s);
  // Draws the final state and ends the bar's line.
  void Finish(int done, int failed, double elapsed_s);

  // The bar's text (no '\r'), e.g. " 37%|###7      | 370/1000 [00:12<00:20, 30.12 req/s]".
  static std::string Bar(int done, int total, double elapsed_s);

 private:
  Mode mode_;
  int total_;
  std::FILE* out_;
  double line_interval_s_;
  double last_draw_ = -1;
  int last_done_ = -1;
};

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_PROGRESS_H_
