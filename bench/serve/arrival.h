// When each request is sent: vLLM's arrival process. With a finite
// --request-rate the gaps are gamma distributed with shape = burstiness and
// mean 1/rate (burstiness 1: a Poisson process), then scaled so the last
// request goes out at exactly n/rate; an infinite rate sends all at once.
#ifndef TPSERVE_BENCH_SERVE_ARRIVAL_H_
#define TPSERVE_BENCH_SERVE_ARRIVAL_H_

#include <cstdint>
#include <vector>

namespace tpserve::bench {

// Send times in seconds from the start of the run, ascending, one per request.
// `request_rate` > 0 (may be infinite); `burstiness` > 0 (may be infinite).
std::vector<double> ArrivalTimes(int num_requests, double request_rate, double burstiness,
                                 uint64_t seed);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_ARRIVAL_H_
