// What the benchmark sends (one sampled request) and what it measured for it.
// Times are seconds on a monotonic clock, as vLLM's RequestFuncOutput.
#ifndef TPSERVE_BENCH_SERVE_REQUEST_H_
#define TPSERVE_BENCH_SERVE_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tpserve::bench {

// One request of the workload.
struct SampleRequest {
  // The prompt as text (chat, and completions when prompt_ids is empty).
  std::string prompt;
  // The prompt as token ids: sent as is to /v1/completions, so the server sees
  // exactly prompt_len tokens.
  std::vector<int32_t> prompt_ids;
  // Prompt tokens (of the text, without any chat template).
  int prompt_len = 0;
  // max_tokens of the request.
  int expected_output_len = 0;
};

// One request's measurements.
struct RequestOutput {
  bool success = false;
  // Why it failed ("" on success).
  std::string error;
  // The response's status code; 0 when none came (connection failed).
  long http_status = 0;
  // When it was sent, seconds since the benchmark started.
  double start_time = 0;
  // Time to the first chunk carrying a choice.
  double ttft = 0;
  // Time to the last chunk carrying a choice.
  double latency = 0;
  // Gaps between consecutive choice-bearing chunks.
  std::vector<double> itl;
  // usage.completion_tokens of the final chunk; 0 when the server sent none.
  int output_tokens = 0;
  int prompt_len = 0;
  std::string generated_text;
};

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_REQUEST_H_
