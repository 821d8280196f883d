// Measures the benchmark client itself: N concurrent streams from one
// HttpClient against the in-process fake server, with the client thread's
// own CPU time, so its ceiling (token events per CPU-second) is known apart
// from the server's.
#ifndef TPSERVE_BENCH_SERVE_TESTING_CAPACITY_H_
#define TPSERVE_BENCH_SERVE_TESTING_CAPACITY_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace tpserve::bench::testing {

struct CapacityOptions {
  int streams = 1024;
  int tokens = 64;
  int events_per_write = 1;
  int interval_ms = 0;
  // Hold the token streams until every request is open (all N at once).
  bool barrier = true;
};

struct CapacityResult {
  int succeeded = 0;
  // Chunks carrying a token, as the client parsed them.
  int64_t token_events = 0;
  int64_t output_tokens = 0;
  double wall_s = 0;
  // CPU time of the client thread (user + system).
  double client_cpu_s = 0;
  // Most requests the server had open at once.
  int server_peak_open = 0;
};

absl::StatusOr<CapacityResult> RunCapacity(const CapacityOptions& options);

}  // namespace tpserve::bench::testing

#endif  // TPSERVE_BENCH_SERVE_TESTING_CAPACITY_H_
