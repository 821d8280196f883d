// The benchmark client's own ceiling: N concurrent streams against an
// in-process fake server; prints token events per second of wall time and per
// second of the client thread's CPU (docs/bench.md).
//
//   bazel run //bench/serve:client_capacity -- --streams 1024 --tokens 256
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "bench/serve/testing/capacity.h"

int main(int argc, char** argv) {
  tpserve::bench::testing::CapacityOptions o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    int v = 0;
    if (!absl::SimpleAtoi(argv[i + 1], &v) || v < 0) {
      std::fprintf(stderr, "error: %s: '%s' is not a count\n", flag.c_str(), argv[i + 1]);
      return 2;
    }
    if (flag == "--streams") {
      o.streams = v;
    } else if (flag == "--tokens") {
      o.tokens = v;
    } else if (flag == "--events-per-write") {
      o.events_per_write = v;
    } else if (flag == "--interval-ms") {
      o.interval_ms = v;
    } else {
      std::fprintf(stderr,
                   "usage: client_capacity [--streams N] [--tokens N] [--events-per-write N] "
                   "[--interval-ms N]\n");
      return 2;
    }
  }
  auto r = tpserve::bench::testing::RunCapacity(o);
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  std::printf(
      "streams %d (peak open %d), tokens %d, events/write %d: %d ok, %lld token events "
      "in %.2f s = %.0f events/s; client CPU %.2f s = %.0f events per CPU-second\n",
      o.streams, r->server_peak_open, o.tokens, o.events_per_write, r->succeeded,
      static_cast<long long>(r->token_events), r->wall_s, r->token_events / r->wall_s,
      r->client_cpu_s, r->token_events / r->client_cpu_s);
  return r->succeeded == o.streams ? 0 : 1;
}
