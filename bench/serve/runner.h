// Sends the requests of a run at their arrival times, at most
// `max_concurrency` in flight (later arrivals wait their turn, as behind
// vLLM's semaphore), over one HttpClient, and collects each one's output.
#ifndef TPSERVE_BENCH_SERVE_RUNNER_H_
#define TPSERVE_BENCH_SERVE_RUNNER_H_

#include <vector>

#include "bench/serve/http_client.h"
#include "bench/serve/openai_stream.h"
#include "bench/serve/progress.h"
#include "bench/serve/request.h"

namespace tpserve::bench {

struct RunInput {
  ApiKind kind = ApiKind::kCompletions;
  std::vector<HttpRequest> requests;
  // Prompt tokens of each request (reported back in its output).
  std::vector<int> prompt_lens;
  // Send times, seconds from the start, ascending (see ArrivalTimes).
  std::vector<double> arrivals;
  // 0: no limit.
  int max_concurrency = 0;
};

struct RunResult {
  // One per request, in request order.
  std::vector<RequestOutput> outputs;
  // From the start to the end of the last request.
  double duration_s = 0;
};

// Runs every request to completion. `progress` may be null.
RunResult RunRequests(HttpClient& client, const RunInput& input, Progress* progress);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_RUNNER_H_
