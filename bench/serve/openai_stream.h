// The OpenAI streaming protocol from the benchmark's side: the request body
// vLLM's benchmark sends, and a reader that turns one streamed response into
// a RequestOutput (TTFT, inter-chunk gaps, text, usage, or why it failed).
#ifndef TPSERVE_BENCH_SERVE_OPENAI_STREAM_H_
#define TPSERVE_BENCH_SERVE_OPENAI_STREAM_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "bench/serve/request.h"
#include "bench/serve/sse_parser.h"

namespace tpserve::bench {

enum class ApiKind { kCompletions, kChat };

// The JSON body of one streaming request: `params` (sampling fields and
// --extra-body) are merged over the defaults, as vLLM's extra_body is.
std::string BuildRequestBody(ApiKind kind, const std::string& model, const SampleRequest& request,
                             const nlohmann::json& params);

// Reads one response. Not thread-safe; one per transfer.
class StreamReader {
 public:
  StreamReader(ApiKind kind, int prompt_len, double start_time);

  // Bytes of the body arriving at `now` (seconds); `http_status` is the
  // response's status code.
  void OnData(std::string_view bytes, double now, long http_status);
  // The transfer ended at `now`: `transport_error` is "" when it completed.
  RequestOutput Finish(const std::string& transport_error, long http_status, double now);

 private:
  void OnEvent(std::string_view data, double now);
  void Fail(std::string error);

  ApiKind kind_;
  SseParser sse_;
  RequestOutput out_;
  bool first_chunk_ = false;
  bool done_ = false;
  double last_chunk_ = 0;
  // Body of a non-200 response (capped), for the error message.
  std::string error_body_;
  std::string error_;
};

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_OPENAI_STREAM_H_
